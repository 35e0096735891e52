/**
 * Scores a set of (merged) weights with an ONNX graph that takes every weight as an input
 * (arith-llama's `eval/model.onnx` or a graph from `buildLlamaOnnxGraph`). One session serves any
 * number of weight sets: weights are fed as fp32 input tensors named like the checkpoint.
 *
 * Accuracy is the fixture README's teacher-forced exact match; `meanEntropy` is a label-free
 * fitness in the spirit of AdaMerging (lower entropy on a task's inputs = more confident model).
 */
import { existsSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as ort from "onnxruntime-node";
import { MergeloomError } from "@mergeloom/proto/errors";
import type { CharTokenizer, EvalSet } from "./eval-data.js";

export type EvalDevice = "cpu" | "cuda" | "auto";

export interface WeightTensor {
  data: Float32Array;
  shape: readonly number[];
}
export type WeightMap = ReadonlyMap<string, WeightTensor>;

export interface EvaluatorOptions {
  /** "cpu" (default), "cuda" (fails if the CUDA execution provider cannot load), "auto" (CUDA if it loads, else CPU). */
  device?: EvalDevice;
  /** onnxruntime intra-op threads; default: onnxruntime's choice (all cores). */
  threads?: number;
  /** Sequences per graph run; default 256. */
  batchSize?: number;
  /** Needed only to score unlabeled prompts (`meanEntropy(weights, string[])`). */
  tokenizer?: CharTokenizer;
  /** Greedy continuation limit for unlabeled prompts; default 8 new tokens. */
  maxNewTokens?: number;
  /** Longest sequence the graph is run on (prompt + continuation); default 32 (the fixture's max_position_embeddings). */
  maxSequenceLength?: number;
}

export interface AccuracyResult {
  correct: number;
  total: number;
  accuracy: number;
}

export interface TeacherForcedResult extends AccuracyResult {
  /** Mean over examples of the per-token log-probability (nats, ≤ 0) of the reference answer and <eos>. */
  meanLogProb: number;
  /** Mean over examples of the probability of the whole answer and <eos> (exp of their summed log-probabilities): the expected exact match when sampling. */
  meanAnswerProb: number;
}

const INPUT_IDS = "input_ids";

export class OnnxEvaluator {
  private constructor(
    private readonly session: ort.InferenceSession,
    /** The graph's path, or `<in-memory graph>` for bytes; used in error messages. */
    readonly graphPath: string,
    /** The execution provider actually used. */
    readonly device: "cpu" | "cuda",
    readonly batchSize: number,
    private readonly opts: EvaluatorOptions,
    /** Expected shape per weight input; `undefined` where the runtime exposes no metadata. */
    private readonly expected: ReadonlyMap<string, ReadonlyArray<number | string> | undefined>,
    private readonly logitsName: string,
  ) {}

  /** `graph` is a .onnx path or its bytes (e.g. from `buildLlamaOnnxGraph`). */
  static async create(graph: string | Uint8Array, opts: EvaluatorOptions = {}): Promise<OnnxEvaluator> {
    const graphPath = typeof graph === "string" ? graph : "<in-memory graph>";
    const device = opts.device ?? "cpu";
    if (!["cpu", "cuda", "auto"].includes(device)) {
      throw evalError(`create evaluator ${graphPath}: unknown device '${String(device)}' (known: cpu, cuda, auto)`);
    }
    const batchSize = opts.batchSize ?? 256;
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
      throw evalError(`create evaluator ${graphPath}: batchSize ${batchSize} must be a positive integer`);
    }
    // No spin-waiting: the evaluator shares cores with merge workers and other evaluators, and on an
    // oversubscribed 2-core machine spinning threads halved throughput (measured in this repo).
    const base: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: "all",
      interOpNumThreads: 1,
      extra: { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } },
    };
    if (opts.threads !== undefined) base.intraOpNumThreads = opts.threads;

    let session: ort.InferenceSession | undefined;
    let used: "cpu" | "cuda" = "cpu";
    if (device !== "cpu") {
      const listed = ort.listSupportedBackends().some((b) => b.name === "cuda");
      try {
        // Fatal-only logging: a missing CUDA library is an expected outcome for "auto", not an error to print.
        if (!listed) throw new Error("this onnxruntime-node build does not list the cuda backend");
        const missing = missingCudaLibrary();
        if (missing) throw new Error(`${missing} is not installed next to the onnxruntime-node binding`);
        session = await openSession(graph, { ...base, executionProviders: ["cuda"], logSeverityLevel: device === "auto" ? 4 : 3 });
        used = "cuda";
      } catch (err) {
        if (device === "cuda") {
          throw evalError(
            `create evaluator ${graphPath}: the CUDA execution provider is not available (${(err as Error).message}); install onnxruntime-node's CUDA binaries or use --device cpu/auto`,
            err,
          );
        }
      }
    }
    if (session === undefined) {
      try {
        session = await openSession(graph, { ...base, executionProviders: ["cpu"] });
      } catch (err) {
        throw evalError(`create evaluator ${graphPath}: onnxruntime cannot load the graph (${(err as Error).message})`, err);
      }
    }

    if (!session.inputNames.includes(INPUT_IDS)) {
      await session.release();
      throw evalError(
        `create evaluator ${graphPath}: the graph has no '${INPUT_IDS}' input (inputs: ${session.inputNames.join(", ")}); expected the arith-llama evaluation interface`,
      );
    }
    if (session.outputNames.length < 1) {
      await session.release();
      throw evalError(`create evaluator ${graphPath}: the graph has no outputs`);
    }
    const logitsName = session.outputNames.includes("logits") ? "logits" : session.outputNames[0];

    // inputMetadata exists from onnxruntime 1.22 on; older runtimes leave shapes to be checked by run().
    const meta = (session as { inputMetadata?: readonly ort.InferenceSession.ValueMetadata[] }).inputMetadata;
    const expected = new Map<string, ReadonlyArray<number | string> | undefined>();
    for (const name of session.inputNames) {
      if (name === INPUT_IDS) continue;
      const m = meta?.find((v) => v.name === name);
      if (m && m.isTensor && m.type !== "float32") {
        await session.release();
        throw evalError(`create evaluator ${graphPath}: weight input '${name}' has type ${m.type}; only float32 weight inputs are supported`);
      }
      expected.set(name, m && m.isTensor ? m.shape : undefined);
    }
    return new OnnxEvaluator(session, graphPath, used, batchSize, opts, expected, logitsName);
  }

  /** The graph's weight inputs (every input except `input_ids`), in graph order. */
  inputNames(): string[] {
    return [...this.expected.keys()];
  }

  /** Teacher-forced exact match (fixture README scoring rule). */
  async accuracy(weights: WeightMap, data: EvalSet): Promise<AccuracyResult> {
    const { correct, total, accuracy } = await this.teacherForced(weights, data);
    return { correct, total, accuracy };
  }

  /**
   * One teacher-forced pass over a labelled set giving both the exact match and the likelihood of
   * the reference answer: `meanLogProb` is the log-probability (nats) of the scored tokens (answer
   * and final `<eos>`), averaged per example then over examples — a smooth score where exact match
   * is a step function of the weights. `meanAnswerProb` is the mean probability of the whole
   * answer, a smooth relaxation of exact match that, unlike the log-probability, gives examples the
   * model has no chance on no weight.
   */
  async teacherForced(weights: WeightMap, data: EvalSet): Promise<TeacherForcedResult> {
    const feeds = this.weightFeeds(weights);
    const ex = data.examples;
    let correct = 0;
    let logProbSum = 0;
    let answerProbSum = 0;
    for (let start = 0; start < ex.length; start += this.batchSize) {
      const batch = ex.slice(start, start + this.batchSize);
      const { logits, seq, vocab } = await this.run(
        feeds,
        batch.map((e) => e.tokens),
        padIdOf(data),
      );
      for (let b = 0; b < batch.length; b++) {
        const e = batch[b];
        let ok = true;
        let lp = 0;
        // Position j predicts tokens[j+1]; scored j = P .. P+A (answer digits and the final <eos>).
        for (let j = e.promptLength; j <= e.promptLength + e.answerLength; j++) {
          const off = (b * seq + j) * vocab;
          if (ok) ok = argmax(logits, off, vocab) === e.tokens[j + 1];
          lp += logSoftmaxAt(logits, off, vocab, e.tokens[j + 1]);
        }
        if (ok) correct++;
        logProbSum += lp / (e.answerLength + 1);
        answerProbSum += Math.exp(lp);
      }
    }
    const n = ex.length;
    return {
      correct,
      total: n,
      accuracy: n === 0 ? 0 : correct / n,
      meanLogProb: n === 0 ? 0 : logProbSum / n,
      meanAnswerProb: n === 0 ? 0 : answerProbSum / n,
    };
  }

  /**
   * Mean entropy (nats) of the next-token distribution, averaged per example then over examples.
   * - EvalSet: at the scored positions P..P+A, teacher-forced on the reference answer (the answer
   *   tokens are inputs only; correctness is not used).
   * - string[] (unlabeled prompts, needs `tokenizer`): at each position of a greedy continuation of
   *   `<bos> prompt`, up to and including the step that emits `<eos>` (at most `maxNewTokens` steps).
   */
  async meanEntropy(weights: WeightMap, prompts: EvalSet | string[]): Promise<number> {
    const feeds = this.weightFeeds(weights);
    return Array.isArray(prompts) ? this.greedyEntropy(feeds, prompts) : this.forcedEntropy(feeds, prompts);
  }

  async release(): Promise<void> {
    await this.session.release();
  }

  private async forcedEntropy(feeds: Record<string, ort.Tensor>, data: EvalSet): Promise<number> {
    let sum = 0;
    for (let start = 0; start < data.examples.length; start += this.batchSize) {
      const batch = data.examples.slice(start, start + this.batchSize);
      const { logits, seq, vocab } = await this.run(
        feeds,
        batch.map((e) => e.tokens),
        padIdOf(data),
      );
      for (let b = 0; b < batch.length; b++) {
        const e = batch[b];
        let h = 0;
        for (let j = e.promptLength; j <= e.promptLength + e.answerLength; j++) h += entropy(logits, (b * seq + j) * vocab, vocab);
        sum += h / (e.answerLength + 1);
      }
    }
    return data.examples.length === 0 ? 0 : sum / data.examples.length;
  }

  private async greedyEntropy(feeds: Record<string, ort.Tensor>, prompts: string[]): Promise<number> {
    const tok = this.opts.tokenizer;
    if (!tok) throw evalError(`score prompts with ${this.graphPath}: unlabeled prompts need a tokenizer; pass { tokenizer } to OnnxEvaluator.create`);
    const maxNew = this.opts.maxNewTokens ?? 8;
    const maxLen = this.opts.maxSequenceLength ?? 32;
    const seqs = prompts.map((p, i) => [tok.bosId, ...tok.encode(p, `prompt ${i}`)]);
    const hSum = new Float64Array(prompts.length);
    const steps = new Int32Array(prompts.length);
    let active = seqs.map((_, i) => i).filter((i) => seqs[i].length < maxLen);
    for (let step = 0; step < maxNew && active.length > 0; step++) {
      const next: number[] = [];
      for (let start = 0; start < active.length; start += this.batchSize) {
        const idx = active.slice(start, start + this.batchSize);
        const { logits, seq, vocab } = await this.run(
          feeds,
          idx.map((i) => seqs[i]),
          tok.padId,
        );
        for (let b = 0; b < idx.length; b++) {
          const i = idx[b];
          const off = (b * seq + seqs[i].length - 1) * vocab;
          hSum[i] += entropy(logits, off, vocab);
          steps[i]++;
          const t = argmax(logits, off, vocab);
          seqs[i].push(t);
          if (t !== tok.eosId && seqs[i].length < maxLen) next.push(i);
        }
      }
      active = next;
    }
    let sum = 0;
    for (let i = 0; i < prompts.length; i++) sum += steps[i] > 0 ? hSum[i] / steps[i] : 0;
    return prompts.length === 0 ? 0 : sum / prompts.length;
  }

  /** Validates `weights` against the graph and wraps each one in an ort.Tensor, once per call. */
  private weightFeeds(weights: WeightMap): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    const missing: string[] = [];
    for (const [name, want] of this.expected) {
      const w = weights.get(name);
      if (w === undefined) {
        missing.push(want ? `${name} ${JSON.stringify(want)}` : name);
        continue;
      }
      if (!(w.data instanceof Float32Array)) {
        throw evalError(`evaluate ${this.graphPath}: weight '${name}' must be a Float32Array (convert bf16/f16 to fp32 first)`);
      }
      const numel = w.shape.reduce((a, d) => a * d, 1);
      if (w.data.length !== numel) {
        throw evalError(`evaluate ${this.graphPath}: weight '${name}' has ${w.data.length} values but its shape ${JSON.stringify(w.shape)} needs ${numel}`);
      }
      if (want && !shapeMatches(want, w.shape)) {
        throw evalError(
          `evaluate ${this.graphPath}: weight '${name}' has shape ${JSON.stringify(w.shape)} but the graph expects ${JSON.stringify(want)}; the checkpoint does not match the graph's architecture`,
        );
      }
      feeds[name] = new ort.Tensor("float32", w.data, w.shape as number[]);
    }
    if (missing.length > 0) {
      const shown = missing.slice(0, 5).join(", ") + (missing.length > 5 ? `, ... (${missing.length} in all)` : "");
      throw evalError(`evaluate ${this.graphPath}: missing weight tensor(s) ${shown}; the graph needs every weight input named like the checkpoint`);
    }
    return feeds;
  }

  /** Right-pads `rows` into one int64 batch and returns the flat logits [B, S, V]. */
  private async run(
    weightFeeds: Record<string, ort.Tensor>,
    rows: ArrayLike<number>[],
    padId: number,
  ): Promise<{ logits: Float32Array; seq: number; vocab: number }> {
    let seq = 0;
    for (const r of rows) seq = Math.max(seq, r.length);
    const ids = new BigInt64Array(rows.length * seq).fill(BigInt(padId));
    for (let b = 0; b < rows.length; b++) {
      const r = rows[b];
      for (let j = 0; j < r.length; j++) ids[b * seq + j] = BigInt(r[j]);
    }
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await this.session.run({ ...weightFeeds, [INPUT_IDS]: new ort.Tensor("int64", ids, [rows.length, seq]) }, [this.logitsName]);
    } catch (err) {
      throw evalError(
        `evaluate ${this.graphPath}: onnxruntime run failed (${(err as Error).message}); check that the weights match the graph's architecture`,
        err,
      );
    }
    const t = out[this.logitsName];
    const dims = t.dims;
    if (dims.length !== 3 || dims[0] !== rows.length || dims[1] !== seq) {
      throw evalError(`evaluate ${this.graphPath}: output '${this.logitsName}' has shape ${JSON.stringify(dims)}; expected [${rows.length}, ${seq}, vocab]`);
    }
    return { logits: t.data as Float32Array, seq, vocab: dims[2] };
  }
}

/**
 * onnxruntime-node lists "cuda" even when its provider libraries were never downloaded, and a failed
 * load prints an error through ORT's global logger. Looking for the library first keeps "auto" quiet;
 * an unknown package layout returns undefined and leaves the decision to the guarded session creation.
 */
function missingCudaLibrary(): string | undefined {
  const lib = "libonnxruntime_providers_cuda.so";
  if (process.platform !== "linux") return undefined;
  try {
    const pkg = createRequire(import.meta.url).resolve("onnxruntime-node/package.json");
    const root = join(dirname(pkg), "bin");
    for (const napi of readdirSync(root)) {
      const dir = join(root, napi, process.platform, process.arch);
      if (existsSync(join(dir, "onnxruntime_binding.node"))) return existsSync(join(dir, lib)) ? undefined : lib;
    }
  } catch {
    // Unknown layout: fall through to the guarded session creation.
  }
  return undefined;
}

function openSession(graph: string | Uint8Array, options: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession> {
  return typeof graph === "string" ? ort.InferenceSession.create(graph, options) : ort.InferenceSession.create(graph, options);
}

function padIdOf(data: EvalSet): number {
  return data.padId ?? 0;
}

function shapeMatches(want: ReadonlyArray<number | string>, got: readonly number[]): boolean {
  if (want.length !== got.length) return false;
  // Symbolic dimensions (strings) accept any size.
  return want.every((d, i) => typeof d === "string" || d === got[i]);
}

/** Index of the largest logit; the first maximal index wins, as numpy's argmax. */
export function argmax(a: Float32Array, off: number, n: number): number {
  let best = 0;
  let bv = a[off];
  for (let k = 1; k < n; k++) {
    if (a[off + k] > bv) {
      bv = a[off + k];
      best = k;
    }
  }
  return best;
}

/** log softmax(a[off .. off+n])[k], computed stably in float64. */
export function logSoftmaxAt(a: Float32Array, off: number, n: number, k: number): number {
  let m = -Infinity;
  for (let i = 0; i < n; i++) m = Math.max(m, a[off + i]);
  let z = 0;
  for (let i = 0; i < n; i++) z += Math.exp(a[off + i] - m);
  return a[off + k] - m - Math.log(z);
}

/** Entropy (nats) of softmax(a[off .. off+n]), computed stably in float64. */
export function entropy(a: Float32Array, off: number, n: number): number {
  let m = -Infinity;
  for (let k = 0; k < n; k++) m = Math.max(m, a[off + k]);
  let z = 0;
  let s = 0;
  for (let k = 0; k < n; k++) {
    const d = a[off + k] - m;
    const e = Math.exp(d);
    z += e;
    s += e * d;
  }
  return Math.log(z) - s / z;
}

function evalError(message: string, cause?: unknown): MergeloomError {
  return new MergeloomError("EVAL_FAILED", message, cause === undefined ? {} : { cause });
}
