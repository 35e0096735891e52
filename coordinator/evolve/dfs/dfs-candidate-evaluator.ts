/**
 * Scores frankenmerge candidates whose layer count varies: each candidate's mergeYaml (a
 * passthrough `slices:` config) goes through the same parse → plan → in-memory merge → output
 * dtype rounding as `mergeloom merge`, and is scored with a Llama ONNX graph generated for the
 * merge's layer count (one graph and one onnxruntime session per layer count, cached). The graph's
 * other dimensions come from the source models' config.json (all must agree).
 *
 * Any passthrough config works, so baselines (a single expert, the plain passthrough of every
 * layer) are scored the same way. Command tasks get the candidate written to a temporary checkpoint.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { errorMessage } from "@mergeloom/proto";
import { ConfigError } from "@mergeloom/engine/errors";
import { CharTokenizer, loadEvalSet, type EvalSet } from "@mergeloom/engine/eval";
import { runScoreCommand } from "@mergeloom/engine/eval";
import { combineScores, type FitnessSpec } from "@mergeloom/engine/eval";
import { loadPrompts } from "@mergeloom/engine/eval";
import { buildLlamaOnnxGraph, type LlamaGraphConfig } from "./llama-onnx-graph.js";
import { OnnxEvaluator } from "@mergeloom/engine/eval";
import { createDefaultRegistry } from "@mergeloom/engine/methods";
import { InMemoryMerger, type MergedTensor } from "@mergeloom/engine/driver";
import { createRemoteReader } from "@mergeloom/engine/driver";
import { TensorIO } from "@mergeloom/engine/driver";
import { parseMergeConfig } from "@mergeloom/engine/config";
import type { MergeConfig } from "@mergeloom/engine/config";
import { LocalDispatcher } from "@mergeloom/engine/job";
import { runMergeJob } from "@mergeloom/engine/job";
import { buildPlan } from "@mergeloom/engine/plan";
import type { Candidate, CandidateEvaluator, CandidateResult } from "../candidate-evaluator.js";
import { CheckpointCache } from "@mergeloom/engine/storage";

export interface DfsEvaluatorOptions {
  fitness: FitnessSpec;
  /** Architecture of the generated graphs; num_hidden_layers is replaced per candidate. */
  graphConfig: LlamaGraphConfig;
  /** As `mergeloom merge --random-seed` (passthrough draws nothing; kept for command tasks' merges). */
  mergeSeed?: number;
}

interface Prepared {
  name: string;
  set?: EvalSet;
  prompts?: string[];
}

const GRAPH_FIELDS = ["hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta", "vocab_size", "tie_word_embeddings"] as const;

/** The graph config of a model's config.json; throws when a field the graph needs is missing. */
export function llamaGraphConfigOf(cfg: Record<string, unknown> | undefined, model: string): LlamaGraphConfig {
  const need = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "rms_norm_eps", "vocab_size"];
  for (const k of need) {
    if (typeof cfg?.[k] !== "number") throw new ConfigError("genome.models", `model '${model}' has no numeric ${k} in its config.json; dfs search generates a Llama graph from it`);
  }
  const c = cfg!;
  const out: LlamaGraphConfig = {
    hidden_size: c.hidden_size as number,
    intermediate_size: c.intermediate_size as number,
    num_hidden_layers: c.num_hidden_layers as number,
    num_attention_heads: c.num_attention_heads as number,
    rms_norm_eps: c.rms_norm_eps as number,
    rope_theta: typeof c.rope_theta === "number" ? c.rope_theta : 10000,
    vocab_size: c.vocab_size as number,
  };
  if (typeof c.num_key_value_heads === "number") out.num_key_value_heads = c.num_key_value_heads;
  if (typeof c.head_dim === "number") out.head_dim = c.head_dim;
  if (typeof c.tie_word_embeddings === "boolean") out.tie_word_embeddings = c.tie_word_embeddings;
  return out;
}

/** Graph configs of several models must agree on everything but the layer count. */
export function sameArchitecture(a: LlamaGraphConfig, b: LlamaGraphConfig): string | undefined {
  for (const k of GRAPH_FIELDS) if (a[k] !== b[k]) return `${k} ${String(a[k])} vs ${String(b[k])}`;
  return undefined;
}

export class DfsCandidateEvaluator implements CandidateEvaluator {
  private readonly checkpoints = new CheckpointCache();
  private readonly registry = createDefaultRegistry();
  private readonly io = new TensorIO(createRemoteReader());
  private readonly merger = new InMemoryMerger(this.registry, this.io);
  private readonly sessions = new Map<number, Promise<OnnxEvaluator>>();
  private readonly graphs = new Map<number, Uint8Array>();

  private constructor(
    private readonly opts: DfsEvaluatorOptions,
    private readonly prepared: Prepared[],
  ) {}

  static async create(opts: DfsEvaluatorOptions): Promise<DfsCandidateEvaluator> {
    const prepared: Prepared[] = [];
    const graphTasks = opts.fitness.tasks.filter((t) => t.kind !== "command");
    if (graphTasks.length > 0) {
      if (!opts.fitness.vocab) throw new ConfigError("fitness.vocab", "accuracy and entropy tasks need a vocab.json");
      const tok = await CharTokenizer.fromVocabFile(opts.fitness.vocab);
      for (const t of graphTasks) {
        if (t.kind === "accuracy") {
          const set = await loadEvalSet(t.data!, tok);
          if (t.limit !== undefined) set.examples = set.examples.slice(0, t.limit);
          prepared.push({ name: t.name, set });
        } else {
          prepared.push({ name: t.name, prompts: await loadPrompts(t.data!, t.limit) });
        }
      }
    }
    return new DfsCandidateEvaluator(opts, prepared);
  }

  /** The generated ONNX graph for `numLayers` layers (what best.onnx holds). */
  graph(numLayers: number): Uint8Array {
    let g = this.graphs.get(numLayers);
    if (!g) {
      g = buildLlamaOnnxGraph({ ...this.opts.graphConfig, num_hidden_layers: numLayers });
      this.graphs.set(numLayers, g);
    }
    return g;
  }

  async evaluate(candidates: readonly Candidate[], signal?: AbortSignal): Promise<CandidateResult[]> {
    const out: CandidateResult[] = [];
    for (const c of candidates) {
      signal?.throwIfAborted();
      out.push(await this.evaluateOne(c, signal));
    }
    return out;
  }

  private async evaluateOne(c: Candidate, signal?: AbortSignal): Promise<CandidateResult> {
    const tasks = this.opts.fitness.tasks;
    let dir: string | undefined;
    try {
      const config = parseMergeConfig(c.mergeYaml, `candidate ${c.id}`, this.registry);
      const scores: Record<string, number> = {};
      if (this.prepared.length > 0) {
        const { weights, numLayers } = await this.mergeInMemory(config);
        const ev = await this.session(numLayers);
        for (const p of this.prepared) {
          scores[p.name] = p.set ? (await ev.accuracy(weights, p.set)).accuracy : -(await ev.meanEntropy(weights, p.prompts!));
        }
      }
      if (tasks.some((t) => t.kind === "command")) {
        dir = await mkdtemp(join(tmpdir(), "mergeloom-dfs-candidate-"));
        const dispatcher = new LocalDispatcher({ threads: 0 });
        try {
          await runMergeJob(config, dispatcher, { out: join(dir, "model"), seed: this.opts.mergeSeed ?? 0, maxShardBytes: 5_000_000_000 });
        } finally {
          await dispatcher.close();
        }
        for (const t of tasks) {
          if (t.kind === "command") scores[t.name] = await runScoreCommand(t.command!, join(dir, "model"), { key: t.key, signal });
        }
      }
      return { id: c.id, scores, fitness: combineScores(scores, tasks) };
    } catch (err) {
      if (signal?.aborted) throw err;
      return { id: c.id, scores: {}, fitness: NaN, error: errorMessage(err) };
    } finally {
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  }

  /** The merged weights as `mergeloom merge` would write them (fp32 of the bf16 output) and the layer count. */
  async mergeInMemory(config: MergeConfig): Promise<{ weights: Map<string, MergedTensor>; numLayers: number }> {
    const plan = await buildPlan(config, { registry: this.registry, open: (ref) => this.checkpoints.open(ref) });
    return { weights: await this.merger.mergeAll(plan.tensors, this.opts.mergeSeed ?? 0), numLayers: plan.numLayers };
  }

  private session(numLayers: number): Promise<OnnxEvaluator> {
    let s = this.sessions.get(numLayers);
    if (!s) {
      const f = this.opts.fitness;
      s = OnnxEvaluator.create(this.graph(numLayers), { device: "cpu", batchSize: f.batchSize, threads: f.threads });
      this.sessions.set(numLayers, s);
      s.catch(() => this.sessions.delete(numLayers));
    }
    return s;
  }

  async close(): Promise<void> {
    for (const s of this.sessions.values()) await (await s.catch(() => undefined))?.release();
    this.sessions.clear();
    this.io.close();
    this.merger.clear();
  }
}
