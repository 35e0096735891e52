/**
 * What a search scores a candidate merge with: one or more tasks, each a score to MAXIMISE,
 * combined by weights (or kept side by side for a Pareto front).
 *
 * - accuracy: teacher-forced exact match of an ONNX graph on a labelled JSONL file (as `mergeloom eval`);
 * - likelihood: on the same kind of file, the mean log-probability (nats, ≤ 0) the graph gives the
 *   reference answer under teacher forcing (per token, averaged per example then over examples): a
 *   smooth score where exact match is a step function of the weights (it shares the accuracy
 *   task's pass over the same data); with `measure: answer_prob`, the mean probability of the whole
 *   answer instead (exp of its summed log-probability, in [0, 1]: the expected exact match when
 *   sampling, which gives examples the model has no chance on no weight);
 * - entropy: label-free — the negated mean entropy of the graph's greedy predictions on the
 *   file's prompts (answers, if present, are ignored), so lower entropy scores higher (AdaMerging);
 * - command: a user command run on a checkpoint written to disk; its stdout's last JSON value
 *   (a number, or an object read at `key`) is the score.
 * - scorer: the same, but the command is a named scorer configured where the evaluation runs
 *   (`--scorer NAME=COMMAND` on a worker or on `mergeloom evolve`); see scorers.ts.
 */
import type { FitnessSpec, FitnessTask, FitnessTaskKind, LikelihoodMeasure } from "@mergeloom/proto/records";

// The spec is part of the wire contract (an eval task carries it), so it is defined once, in proto.
export type { FitnessSpec, FitnessTask, FitnessTaskKind, LikelihoodMeasure };

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

/** Tasks scored on the ONNX graph in memory (accuracy, likelihood, entropy), as opposed to on a written checkpoint. */
export function isGraphTask(t: Pick<FitnessTask, "kind">): boolean {
  return t.kind === "accuracy" || t.kind === "likelihood" || t.kind === "entropy";
}
