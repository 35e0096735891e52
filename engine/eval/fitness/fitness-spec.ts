/**
 * What a search scores a candidate merge with: one or more tasks, each a score to MAXIMISE,
 * combined by weights (or kept side by side for a Pareto front).
 *
 * - accuracy: teacher-forced exact match of an ONNX graph on a labelled JSONL file (as `mergeloom eval`);
 * - entropy: label-free — the negated mean entropy of the graph's greedy predictions on the
 *   file's prompts (answers, if present, are ignored), so lower entropy scores higher (AdaMerging);
 * - command: a user command run on a checkpoint written to disk; its stdout's last JSON value
 *   (a number, or an object read at `key`) is the score.
 * - scorer: the same, but the command is a named scorer configured where the evaluation runs
 *   (`--scorer NAME=COMMAND` on a worker or on `mergeloom evolve`); see scorers.ts.
 */
export type FitnessTaskKind = "accuracy" | "entropy" | "command" | "scorer";

export interface FitnessTask {
  name: string;
  kind: FitnessTaskKind;
  /** JSONL file (accuracy, entropy). */
  data?: string;
  /** Shell command (command); `{checkpoint}` is replaced by the checkpoint path, also in $MERGELOOM_CHECKPOINT. */
  command?: string;
  /** Name of a worker-side scorer (scorer): the worker's configured command runs, not one from the config. */
  scorer?: string;
  /** Field of the command's / scorer's JSON object to read (default "score"). */
  key?: string;
  /** Weight in the combined fitness (default 1). */
  weight: number;
  /** First N examples of `data` only. */
  limit?: number;
}

export interface FitnessSpec {
  /** ONNX graph taking the weights as inputs (needed by accuracy and entropy tasks). */
  graph?: string;
  /** vocab.json of the character tokenizer. */
  vocab?: string;
  batchSize: number;
  /** onnxruntime intra-op threads per evaluator (default: onnxruntime's choice). */
  threads?: number;
  /** weighted: one scalar; pareto: also keep the non-dominated set over the task scores. */
  objective: "weighted" | "pareto";
  tasks: FitnessTask[];
}

/** The weighted mean of the task scores (higher is better); NaN when any score is missing. */
export function combineScores(scores: Readonly<Record<string, number>>, tasks: readonly FitnessTask[]): number {
  let sum = 0;
  let wsum = 0;
  for (const t of tasks) {
    const s = scores[t.name];
    if (typeof s !== "number" || Number.isNaN(s)) return NaN;
    sum += t.weight * s;
    wsum += t.weight;
  }
  return wsum === 0 ? NaN : sum / wsum;
}
