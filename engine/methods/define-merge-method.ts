/**
 * The one signature every merge method has. A method is a plain object: its name (as in
 * mergekit configs), the paper it follows, its parameters, whether it needs a base model, and a
 * pure `merge` function from fp32 inputs to an fp32 output.
 */
import type { ParamSpecs, ResolvedParams } from "./params.js";

export interface MergeInput {
  /** The model reference as written in the config (path), for error messages. */
  model: string;
  /** The input tensor in fp32, flattened row-major; `shape` in the context gives its layout. */
  data: Float32Array;
  /** Resolved per-model parameters (weight, density, ...). Unset ones without default are absent. */
  params: ResolvedParams;
}

export interface MergeContext {
  /** Output tensor name (for messages). */
  tensorName: string;
  /** Shape shared by every input and by the output. */
  shape: readonly number[];
  /** Inputs in mergekit's order: sources in config order, the base appended last if not listed. */
  inputs: readonly MergeInput[];
  /** Index of the base model in `inputs`, or -1 when there is none. */
  baseIndex: number;
  /** Resolved global parameters. */
  params: ResolvedParams;
  /**
   * A deterministic uniform [0,1) stream for input `i`, derived from (seed, tensor name, i):
   * the same numbers whichever process or thread computes the tensor, in whatever order.
   */
  random(i: number): () => number;
}

/** An input a method keeps nothing of in one tensor, with the parameter to blame and its fix. */
export interface DroppedInput {
  input: number;
  /** The parameter that causes it, e.g. `gamma`. */
  param: string;
  /** Why nothing is kept, e.g. "gamma 0 and density 0.5 give n_top = 0 …". */
  why: string;
  /** What to change. */
  fix: string;
}

/** Every input but the base, dropped for one tensor-level reason (a lambda or select_topk of 0). */
export function dropAllButBase(ctx: { baseIndex: number; inputs: readonly unknown[] }, drop: Omit<DroppedInput, "input">): DroppedInput[] {
  return ctx.inputs.flatMap((_, input) => (input === ctx.baseIndex ? [] : [{ input, ...drop }]));
}

export type BaseRequirement = "none" | "optional" | "required";

export interface MergeMethod {
  name: string;
  /** Paper or documentation URL. */
  reference: string;
  params: ParamSpecs;
  modelParams: ParamSpecs;
  base: BaseRequirement;
  /**
   * True when output element i depends only on input elements i (given the resolved scalars),
   * so the driver may merge a large tensor in row chunks. A function when it depends on params.
   */
  elementwise?: boolean | ((params: ResolvedParams, inputs: readonly { params: ResolvedParams }[]) => boolean);
  /** Extra validation of the inputs for one tensor (counts, required params); throws ParamError. */
  check?(ctx: Omit<MergeContext, "random" | "inputs"> & { inputs: readonly Omit<MergeInput, "data">[] }): void;
  /**
   * Inputs whose contribution to this tensor is empty whatever the data (breadcrumbs' empty
   * outlier slice, a density or select_topk of 0). The planner adds them up per model: a model
   * left out of every tensor it feeds is refused, one left out of some is warned about.
   */
  droppedInputs?(ctx: Omit<MergeContext, "random" | "inputs"> & { inputs: readonly Omit<MergeInput, "data">[] }): DroppedInput[];
  merge(ctx: MergeContext): Float32Array;
  /**
   * Optional bounded-memory form of `merge` for large tensors; returns undefined when these
   * inputs must be merged whole. Must give bytes identical to `merge` whatever the chunking.
   */
  streaming?(info: StreamInfo): TensorStream | undefined;
}

/** What a method knows about a tensor before any data is read. */
export type StreamInfo = Omit<MergeContext, "random" | "inputs"> & {
  inputs: readonly Omit<MergeInput, "data">[];
  /** Elements in the whole tensor. */
  numel: number;
};

/** One row chunk of a tensor: a context over rows [r0, r1) of every input. */
export interface StreamChunk {
  /** shape = the chunk's shape; inputs hold its fp32 values (valid only during the call);
   *  random(i) starts at draw `start`, so draw j is element j's whatever the chunking. */
  ctx: MergeContext;
  /** Flat index of the chunk's first element in the whole tensor. */
  start: number;
  /**
   * Byte offsets, in this thread's kernel arena (engine/kernels/wasm-kernels.ts), of every input's
   * raw bf16 bits, given only to a stream that sets `rawBF16` when every input is stored as BF16
   * with no added vectors; `ctx.inputs[i].data` then decodes on first access.
   */
  bf16?: readonly number[];
  /** The counter-based key of input i's random stream: draw j is `uniformAt(...key, start + j)`. */
  randomKey?(i: number): readonly [number, number, number];
}

/**
 * A tensor merged in passes over its row chunks: the driver runs stats passes 0, 1, … while
 * `needsPass(pass)` (asked after the previous pass ended) and then one apply pass. Within a pass
 * chunks come in order, one at a time, so the stream may carry running state (sums, counters).
 * Per-chunk memory is all the driver holds, so memory does not grow with the tensor.
 */
export interface TensorStream {
  /** True when the stream computes from `StreamChunk.bf16` whenever it is given (skips the fp32 decode). */
  rawBF16?: boolean;
  needsPass(pass: number): boolean;
  stats(pass: number, chunk: StreamChunk): void;
  /** The merged values of the chunk (chunk-sized; may be a buffer reused by the next call). */
  apply(chunk: StreamChunk): Float32Array;
  /**
   * apply for a raw bf16 chunk when the output is bf16 too: writes the chunk's output bits at
   * arena offset `out` (what `apply` + round-to-nearest-even would give).
   */
  applyBF16?(chunk: StreamChunk, out: number): void;
}

export function defineMergeMethod(m: MergeMethod): MergeMethod {
  return Object.freeze(m);
}

/**
 * `merge` derived from a method's streaming form, for methods whose stream covers every input:
 * the whole tensor as one chunk through every pass. One code path, so the two forms cannot drift.
 */
export function mergeFromStream(streamFor: (info: StreamInfo) => TensorStream | undefined): (ctx: MergeContext) => Float32Array {
  return (ctx) => {
    let numel = 1;
    for (const d of ctx.shape) numel *= d;
    const stream = streamFor({ ...ctx, numel });
    if (!stream) throw new Error(`merge ${ctx.tensorName}: the method's streaming form refused the whole tensor`);
    const chunk: StreamChunk = { ctx, start: 0 };
    for (let pass = 0; stream.needsPass(pass); pass++) stream.stats(pass, chunk);
    return stream.apply(chunk);
  };
}
