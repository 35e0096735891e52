/**
 * The unit of work: a group of output tensors with references to their inputs. It is plain data
 * (no functions, no tensor bytes), so the same task runs in-process, in a worker thread, or in a
 * worker process on another machine after a trip through the codec.
 */
import type { DType } from "./dtype.js";

export type ParamValue = number | boolean | string;

/** Where the bytes of one input tensor live. */
export interface TensorSource {
  /** Storage URI: an absolute file path, `http(s)://…`, or `synthetic://…`. */
  uri: string;
  /** Absolute byte offset of the tensor's data in that object. */
  offset: number;
  byteLength: number;
  dtype: DType;
  /** The stored shape; may be larger than the output shape (embeddings: top-left crop). */
  shape: number[];
  /** Name of the tensor in its checkpoint (error messages, tracing). */
  tensor: string;
}

export interface TensorInputSpec {
  /** Model reference as written in the config. */
  model: string;
  source: TensorSource;
  /** Resolved per-model parameters; a parameter that is unset and has no default is absent. */
  params: Record<string, ParamValue>;
  /** Added to the input after loading (task-vector transplant: model + scale·vector). */
  addVectors?: Array<{ source: TensorSource; scale: number }>;
  /** A LoRA adapter's delta added to the stored tensor as it loads (`model+adapter` references). */
  lora?: LoraDelta;
  /** Embedding rows rearranged to the merged vocabulary (tokenizer merging); see `TensorSpec.vocab`. */
  rowMap?: RowMap;
}

/**
 * W + scale·B·A with A [r, in] and B [out, r] (PEFT's lora_A / lora_B). `transpose`: the delta is
 * (B·A)ᵀ, for PEFT's fan_in_fan_out layers and embeddings (lora_embedding_A [r, rows],
 * lora_embedding_B [cols, r]).
 */
export interface LoraDelta {
  a: TensorSource;
  b: TensorSource;
  scale: number;
  transpose: boolean;
}

/**
 * Which stored row fills each output row of one input: `runs` holds triples (outStart, inStart,
 * length); output rows below the vocabulary size outside every run take the tensor's default row
 * (`TensorSpec.vocab.defaults`), rows at or above it the mean of this input's vocabulary rows
 * (mergekit's padding). Runs keep the message small: vocabularies mostly move in blocks.
 */
export interface RowMap {
  runs: number[];
}

/** One default embedding row: the average, a copy or zero of stored rows of this tensor's inputs. */
export interface DefaultRow {
  row: number;
  /** Input index and stored row of each term; empty = a zero row. The mean is taken in `dtype`. */
  from: Array<[number, number]>;
}

/** Tokenizer merging of an embedding tensor (mergekit's PermutedEmbeddings). */
export interface VocabSpec {
  /** Token rows of the merged vocabulary; rows beyond it (up to shape[0]) are padding. */
  rows: number;
  defaults: DefaultRow[];
  /** Dtype the defaults and the padding mean are rounded to (mergekit computes them in it). */
  dtype: DType;
}

/** Where an output tensor's bytes go. */
export interface TensorDestination {
  /** Output shard file URI (inside the job's temporary output directory), or `discard://`. */
  uri: string;
  /** Absolute byte offset inside that shard. */
  offset: number;
  byteLength: number;
}

/** What is merged for one output tensor, wherever the result goes (a TensorTask without `dest`). */
export interface TensorSpec {
  name: string;
  shape: number[];
  outDtype: DType;
  method: string;
  params: Record<string, ParamValue>;
  inputs: TensorInputSpec[];
  /** Index of the base model in `inputs`, -1 when none. */
  baseIndex: number;
  /**
   * Set by `--numerics mergekit`: reproduce mergekit's torch arithmetic in this dtype (inputs
   * cast to it on load, every op rounded to it) instead of mergeloom's fp32 default.
   */
  computeDtype?: "F32" | "F16" | "BF16";
  /** With computeDtype: the torch build whose rounding is reproduced ("1.13": Debian's, no MKL); absent means torch 2.x. */
  computeTorch?: "1.13";
  /** Present when the inputs' rows are rearranged to a merged vocabulary. */
  vocab?: VocabSpec;
}

export interface TensorTask extends TensorSpec {
  dest: TensorDestination;
}

export interface MergeTask {
  jobId: string;
  taskId: string;
  /** Seed for the random methods; each tensor derives its own stream from (seed, name). */
  seed: number;
  /**
   * "file" (default): the worker writes each tensor at `dest` (a shared volume). "object": the
   * worker has no shared file system; it uploads the task's tensors, concatenated in task order,
   * as one object `<jobId>.<taskId>` to the outputs object store, and the coordinator writes them
   * to `dest` on its side.
   */
  output?: "file" | "object";
  tensors: TensorTask[];
}

export interface TensorResult {
  name: string;
  byteLength: number;
  /** Hex SHA-256 of the output bytes when the sink checksums (discard://, object store). */
  sha256?: string;
}

export interface MergeTaskResult {
  taskId: string;
  tensors: TensorResult[];
  bytesRead: number;
  bytesWritten: number;
  durationMs: number;
  worker?: string;
  /** Of bytesRead: bytes fetched over the network (Hub, HTTP), and bytes served by a local cache. */
  networkBytes?: number;
  cacheBytes?: number;
  /** Network bytes by host. */
  hosts?: Record<string, number>;
  /** Once per tensor: inputs holding NaN/±inf that the merged tensor carries on. */
  warnings?: string[];
}
