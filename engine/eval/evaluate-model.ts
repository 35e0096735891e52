/**
 * Scores one weight set on several eval files with one evaluator session (the CLI's `evaluate`
 * loads the checkpoint and calls this).
 */
import { CharTokenizer, loadEvalSet } from "./eval-data.js";
import { OnnxEvaluator, type EvalDevice, type WeightMap } from "./onnx-evaluator.js";
import { MergeloomError } from "@mergeloom/proto/errors";

export interface EvaluateModelOptions {
  weights: WeightMap;
  graphPath: string;
  dataFiles: string[];
  vocabPath: string;
  batchSize?: number;
  device?: EvalDevice;
  threads?: number;
}

export interface TaskScore {
  /** File basename without `.jsonl`. */
  name: string;
  correct: number;
  total: number;
  accuracy: number;
}

export interface ModelScore {
  /** Execution provider actually used ("cpu" or "cuda"). */
  device: string;
  tasks: TaskScore[];
  /** Unweighted mean of the task accuracies. */
  mean: number;
}

export async function evaluateModelDir(opts: EvaluateModelOptions): Promise<ModelScore> {
  if (opts.dataFiles.length === 0) {
    throw new MergeloomError("EVAL_FAILED", `evaluate ${opts.graphPath}: no eval data files given; pass at least one .jsonl file`);
  }
  const tok = await CharTokenizer.fromVocabFile(opts.vocabPath);
  // Load every file before starting the session: a bad line fails fast.
  const sets = await Promise.all(opts.dataFiles.map((f) => loadEvalSet(f, tok)));
  const evaluator = await OnnxEvaluator.create(opts.graphPath, { device: opts.device, batchSize: opts.batchSize, threads: opts.threads, tokenizer: tok });
  try {
    const tasks: TaskScore[] = [];
    for (const set of sets) tasks.push({ name: set.name, ...(await evaluator.accuracy(opts.weights, set)) });
    const mean = tasks.reduce((a, t) => a + t.accuracy, 0) / tasks.length;
    return { device: evaluator.device, tasks, mean };
  } finally {
    await evaluator.release();
  }
}
