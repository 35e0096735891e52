/**
 * Scores fp32 weight sets on the graph tasks (accuracy, likelihood, entropy) of a fitness spec with
 * one ONNX session, loaded once: candidates merged in memory go straight into the graph. Every
 * evaluator (in-process, layer-path, eval worker) scores through this class. Accuracy and
 * likelihood tasks on the same data (file and limit) share one teacher-forced pass.
 */
import { readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { MergeloomError } from "@mergeloom/proto/errors";
import { CharTokenizer, loadEvalSet, type EvalSet } from "../eval-data.js";
import { OnnxEvaluator, type EvalDevice, type TeacherForcedResult, type WeightMap } from "../onnx-evaluator.js";
import type { FitnessSpec, FitnessTask } from "./fitness-spec.js";

interface Prepared {
  task: FitnessTask;
  set?: EvalSet;
  prompts?: string[];
}

/** The tokenizer and the data of a spec's graph tasks, loaded once and shared by sessions. */
export interface FitnessData {
  tokenizer: CharTokenizer;
  prepared: readonly Prepared[];
}

export interface OnnxFitnessOptions {
  /** The graph to run instead of `spec.graph`: a path or its bytes (a dfs search generates one per layer count). */
  graph?: string | Uint8Array;
  /** Execution provider (default "cpu"). */
  device?: EvalDevice;
  /** Sessions scoring at once in this process: the cores are split between them unless the spec pins `threads`. */
  slots?: number;
}

export class OnnxFitness {
  private constructor(
    private readonly evaluator: OnnxEvaluator,
    private readonly prepared: readonly Prepared[],
  ) {}

  /** Loads the graph and every graph task's data (command and scorer tasks are skipped). */
  static async create(spec: FitnessSpec, opts: OnnxFitnessOptions = {}): Promise<OnnxFitness> {
    if (!(opts.graph ?? spec.graph) || !spec.vocab) {
      throw new MergeloomError("EVAL_FAILED", "create fitness: accuracy, likelihood and entropy tasks need fitness.graph and fitness.vocab");
    }
    return OnnxFitness.open(await loadFitnessData(spec), spec, opts);
  }

  /** A session on `opts.graph ?? spec.graph` scoring already loaded task data. */
  static async open(data: FitnessData, spec: FitnessSpec, opts: OnnxFitnessOptions = {}): Promise<OnnxFitness> {
    const graph = opts.graph ?? spec.graph;
    if (!graph) throw new MergeloomError("EVAL_FAILED", "create fitness: accuracy, likelihood and entropy tasks need fitness.graph and fitness.vocab");
    const slots = Math.max(1, opts.slots ?? 1);
    const threads = spec.threads ?? (slots > 1 ? Math.max(1, Math.floor(availableParallelism() / slots)) : undefined);
    const evaluator = await OnnxEvaluator.create(graph, { device: opts.device ?? "cpu", batchSize: spec.batchSize, threads, tokenizer: data.tokenizer });
    return new OnnxFitness(evaluator, data.prepared);
  }

  /** The execution provider the session runs on. */
  get device(): "cpu" | "cuda" {
    return this.evaluator.device;
  }

  /** Score per task name: accuracy in [0, 1], mean log-probability (nats, ≤ 0) or answer probability in [0, 1], or −(mean entropy in nats). */
  async score(weights: WeightMap): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    // One teacher-forced pass per loaded set, shared by the accuracy and likelihood tasks on it.
    const passes = new Map<EvalSet, Promise<TeacherForcedResult>>();
    for (const p of this.prepared) {
      if (p.set) {
        let pass = passes.get(p.set);
        if (!pass) passes.set(p.set, (pass = this.evaluator.teacherForced(weights, p.set)));
        const r = await pass;
        out[p.task.name] = p.task.kind !== "likelihood" ? r.accuracy : p.task.measure === "answer_prob" ? r.meanAnswerProb : r.meanLogProb;
      } else out[p.task.name] = -(await this.evaluator.meanEntropy(weights, p.prompts!));
    }
    return out;
  }

  async release(): Promise<void> {
    await this.evaluator.release();
  }
}

/** Loads the vocabulary and each graph task's examples (limits applied; one set per file and limit). */
export async function loadFitnessData(spec: FitnessSpec): Promise<FitnessData> {
  if (!spec.vocab) throw new MergeloomError("EVAL_FAILED", "create fitness: accuracy, likelihood and entropy tasks need fitness.graph and fitness.vocab");
  const tokenizer = await CharTokenizer.fromVocabFile(spec.vocab);
  const prepared: Prepared[] = [];
  const sets = new Map<string, EvalSet>();
  for (const task of spec.tasks) {
    if (task.kind === "accuracy" || task.kind === "likelihood") {
      const key = `${task.data!}#${task.limit ?? "all"}`;
      let set = sets.get(key);
      if (!set) {
        set = await loadEvalSet(task.data!, tokenizer);
        if (task.limit !== undefined) set.examples = set.examples.slice(0, task.limit);
        sets.set(key, set);
      }
      prepared.push({ task, set });
    } else if (task.kind === "entropy") {
      prepared.push({ task, prompts: await loadPrompts(task.data!, task.limit) });
    }
  }
  return { tokenizer, prepared };
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
