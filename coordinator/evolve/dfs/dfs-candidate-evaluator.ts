/**
 * Scores frankenmerge candidates whose layer count varies through the engine's candidate pipeline
 * (scoreCandidate): each candidate's mergeYaml (a passthrough `slices:` config) goes through the
 * same parse → plan → in-memory merge → output dtype rounding as `mergeloom merge`, and is scored
 * with a Llama ONNX graph generated for the merge's layer count (one graph and one onnxruntime
 * session per layer count, cached; the task data is loaded once). The graph's other dimensions come
 * from the source models' config.json (all must agree).
 *
 * Any passthrough config works, so baselines (a single expert, the plain passthrough of every
 * layer) are scored the same way. Command tasks get the candidate written to a temporary checkpoint.
 */
import { ConfigError } from "@mergeloom/engine/errors";
import {
  CandidateMerger,
  isGraphTask,
  loadFitnessData,
  OnnxFitness,
  scoreCandidate,
  tempScratch,
  type FitnessData,
  type FitnessSpec,
} from "@mergeloom/engine/eval";
import { buildLlamaOnnxGraph, type LlamaGraphConfig } from "./llama-onnx-graph.js";
import type { Candidate, CandidateEvaluator, CandidateResult } from "../candidate-evaluator.js";
import { candidateResult } from "../candidate-result.js";

export interface DfsEvaluatorOptions {
  fitness: FitnessSpec;
  /** Architecture of the generated graphs; num_hidden_layers is replaced per candidate. */
  graphConfig: LlamaGraphConfig;
  /** As `mergeloom merge --random-seed` (passthrough draws nothing; kept for command tasks' merges). */
  mergeSeed?: number;
}

const GRAPH_FIELDS = [
  "hidden_size",
  "intermediate_size",
  "num_attention_heads",
  "num_key_value_heads",
  "head_dim",
  "rms_norm_eps",
  "rope_theta",
  "vocab_size",
  "tie_word_embeddings",
] as const;

/** The graph config of a model's config.json; throws when a field the graph needs is missing. */
export function llamaGraphConfigOf(cfg: Record<string, unknown> | undefined, model: string): LlamaGraphConfig {
  const need = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "rms_norm_eps", "vocab_size"];
  for (const k of need) {
    if (typeof cfg?.[k] !== "number")
      throw new ConfigError("genome.models", `model '${model}' has no numeric ${k} in its config.json; dfs search generates a Llama graph from it`);
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
  private readonly merger = new CandidateMerger();
  private readonly scratch = tempScratch("mergeloom-dfs-candidate-");
  private readonly sessions = new Map<number, Promise<OnnxFitness>>();
  private readonly graphs = new Map<number, Uint8Array>();

  private constructor(
    private readonly opts: DfsEvaluatorOptions,
    /** The graph tasks' data; undefined when the fitness has none. */
    private readonly data: FitnessData | undefined,
  ) {}

  static async create(opts: DfsEvaluatorOptions): Promise<DfsCandidateEvaluator> {
    if (!opts.fitness.tasks.some(isGraphTask)) return new DfsCandidateEvaluator(opts, undefined);
    if (!opts.fitness.vocab) throw new ConfigError("fitness.vocab", "accuracy and entropy tasks need a vocab.json");
    return new DfsCandidateEvaluator(opts, await loadFitnessData(opts.fitness));
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

  private evaluateOne(c: Candidate, signal?: AbortSignal): Promise<CandidateResult> {
    const tasks = this.opts.fitness.tasks;
    return candidateResult(c, tasks, signal, () =>
      scoreCandidate(
        this.merger,
        { id: c.id, mergeYaml: c.mergeYaml, seed: this.opts.mergeSeed ?? 0 },
        { tasks, scoreWeights: async (w, plan) => (await this.session(plan.numLayers)).score(w), scratch: this.scratch, signal },
      ),
    );
  }

  private session(numLayers: number): Promise<OnnxFitness> {
    let s = this.sessions.get(numLayers);
    if (!s) {
      s = OnnxFitness.open(this.data!, this.opts.fitness, { graph: this.graph(numLayers) });
      this.sessions.set(numLayers, s);
      s.catch(() => this.sessions.delete(numLayers));
    }
    return s;
  }

  async close(): Promise<void> {
    for (const s of this.sessions.values()) await (await s.catch(() => undefined))?.release();
    this.sessions.clear();
    this.merger.close();
  }
}
