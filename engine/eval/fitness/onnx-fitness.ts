/**
 * Scores fp32 weight sets on the accuracy and entropy tasks of a fitness spec with one ONNX
 * session, loaded once: candidates merged in memory go straight into the graph.
 */
import { readFile } from "node:fs/promises";
import { MergeloomError } from "@mergeloom/proto";
import { CharTokenizer, loadEvalSet, type EvalSet } from "../eval-data.js";
import { OnnxEvaluator, type WeightMap } from "../onnx-evaluator.js";
import type { FitnessSpec, FitnessTask } from "./fitness-spec.js";

interface Prepared {
  task: FitnessTask;
  set?: EvalSet;
  prompts?: string[];
}

export class OnnxFitness {
  private constructor(
    private readonly evaluator: OnnxEvaluator,
    private readonly prepared: Prepared[],
  ) {}

  /** Loads the graph and every accuracy/entropy task's data (command tasks are skipped). */
  static async create(spec: FitnessSpec): Promise<OnnxFitness> {
    const tasks = spec.tasks.filter((t) => t.kind !== "command");
    if (!spec.graph || !spec.vocab) {
      throw new MergeloomError("EVAL_FAILED", "create fitness: accuracy and entropy tasks need fitness.graph and fitness.vocab");
    }
    const tok = await CharTokenizer.fromVocabFile(spec.vocab);
    const prepared: Prepared[] = [];
    for (const task of tasks) {
      if (task.kind === "accuracy") {
        const set = await loadEvalSet(task.data!, tok);
        if (task.limit !== undefined) set.examples = set.examples.slice(0, task.limit);
        prepared.push({ task, set });
      } else {
        prepared.push({ task, prompts: await loadPrompts(task.data!, task.limit) });
      }
    }
    const evaluator = await OnnxEvaluator.create(spec.graph, { device: "cpu", batchSize: spec.batchSize, threads: spec.threads, tokenizer: tok });
    return new OnnxFitness(evaluator, prepared);
  }

  /** Score per task name: accuracy in [0, 1], or −(mean entropy in nats). */
  async score(weights: WeightMap): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const p of this.prepared) {
      if (p.set) out[p.task.name] = (await this.evaluator.accuracy(weights, p.set)).accuracy;
      else out[p.task.name] = -(await this.evaluator.meanEntropy(weights, p.prompts!));
    }
    return out;
  }

  async release(): Promise<void> {
    await this.evaluator.release();
  }
}

/** The `prompt` of each JSONL line; labels are not needed (and not read). */
export async function loadPrompts(file: string, limit?: number): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new MergeloomError("EVAL_FAILED", `load prompts ${file}: ${(err as Error).message}`, { cause: err });
  }
  const prompts: string[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length && (limit === undefined || prompts.length < limit); i++) {
    const line = lines[i].trim();
    if (!line) continue;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (err) {
      throw new MergeloomError("EVAL_FAILED", `load prompts ${file}:${i + 1}: not valid JSON; each line must be {"prompt": "..."}`, { cause: err });
    }
    const p = (raw as { prompt?: unknown } | null)?.prompt;
    if (typeof p !== "string") throw new MergeloomError("EVAL_FAILED", `load prompts ${file}:${i + 1}: field "prompt" is missing or not a string`);
    prompts.push(p);
  }
  if (prompts.length === 0) throw new MergeloomError("EVAL_FAILED", `load prompts ${file}: the file has no prompts`);
  return prompts;
}
