/**
 * Merges one output tensor (or a row range of it, for elementwise methods): read every input's
 * bytes, convert to fp32, crop/add task vectors, run the method, convert to the output dtype,
 * write. This is the whole per-tensor pipeline; it runs the same in the main thread, a worker
 * thread or a worker process.
 */
import type { HubByteStats } from "../storage/hub/hub-stats.js";
import { DTYPE_BYTES, isFloatDType, isMergeableDType, MERGEABLE_DTYPES, numelOf } from "@mergeloom/proto/dtype";
import { MergeloomError } from "@mergeloom/proto/errors";
import { ParamError } from "../errors/index.js";
import type { TensorSource, TensorTask } from "@mergeloom/proto/merge-task";
import { decodeToF32, encodeFromF32 } from "../tensor/convert.js";
import { hasNonFinite } from "../tensor/non-finite.js";
import { createRandom, hashKey } from "../tensor/random.js";
import { kernelArena, type KernelArena } from "../kernels/wasm-kernels.js";
import type { MergeContext, MergeInput, MergeMethod, StreamChunk, TensorStream } from "../methods/define-merge-method.js";
import type { MergeMethodRegistry } from "../methods/merge-method-registry.js";
import { newChecksum, type TensorIO } from "./tensor-io.js";
import { isElementwiseMergekit, mergeMergekit } from "../numerics/merge-mergekit.js";
import { elementReader, hasTransform, readInputRows } from "./transform-input.js";

export interface TensorJob {
  tensor: TensorTask;
  seed: number;
  /** Output rows [start, end) when the tensor is merged in chunks; absent = whole tensor. */
  rows?: [number, number];
  /**
   * Row chunks of a streamed tensor hold about this many elements, and tensors above it are
   * streamed when the method has a streaming form (default STREAM_CHUNK_ELEMENTS; tests use small
   * values). Outputs never depend on it.
   */
  chunkElements?: number;
  /** Overrides STREAM_CACHE_BYTES (tests run both the cached and the re-reading path). */
  cacheBytes?: number;
}

/** Default chunk of the streamed (multi-pass) path: small enough to stay in cache-friendly sizes. */
export const STREAM_CHUNK_ELEMENTS = 1 << 20;
/**
 * A streamed bf16 tensor whose inputs total at most this many bytes is read once and kept in the
 * thread's arena for every pass (re-reads cost more than the kernels); larger ones (embeddings)
 * are re-read per pass. Per thread, so it bounds the extra resident memory.
 */
export const STREAM_CACHE_BYTES = 96 << 20;

/** Epoch milliseconds at the stage boundaries of one job (for the worker's load/merge/write spans). */
export interface StageTimes {
  start: number;
  loaded: number;
  merged: number;
  end: number;
}

export interface TensorJobResult {
  stages?: StageTimes;
  bytesRead: number;
  bytesWritten: number;
  /** sha256 of the bytes, when the destination is `discard://`. */
  sha256?: string;
  /** Hub/HTTP bytes of this job that came over the network vs from a cache (set by the thread). */
  hub?: HubByteStats;
  /** Said once per tensor: inputs holding NaN/±inf that the merged tensor carries on. */
  warnings?: string[];
}

/**
 * Reusable buffers, one per input slot, grown on demand (one set per thread): a thread merges one
 * job at a time, so reusing them saves an allocation and a zero-fill of every input per job.
 */
class Scratch {
  private bufs: Uint8Array[] = [];
  private f32s: Float32Array[] = [];
  get(i: number, n: number): Uint8Array {
    let b = this.bufs[i];
    if (!b || b.byteLength < n) {
      b = new Uint8Array(Math.max(n, Math.ceil((b?.byteLength ?? 0) * 1.25)));
      this.bufs[i] = b;
    }
    return b.subarray(0, n);
  }
  /** fp32 buffer of slot i (contents undefined); only valid until the job that asked ends. */
  f32(i: number, n: number): Float32Array {
    let b = this.f32s[i];
    if (!b || b.length < n) {
      b = new Float32Array(Math.max(n, Math.ceil((b?.length ?? 0) * 1.25)));
      this.f32s[i] = b;
    }
    return b.subarray(0, n);
  }
}
const scratch = new Scratch();
/** Largest fp32 input kept for reuse (elements): a row chunk of an elementwise method. */
const SCRATCH_F32_MAX = 1 << 22;

export function rowsOf(shape: readonly number[]): number {
  return shape.length === 0 ? 1 : shape[0];
}
export function rowElems(shape: readonly number[]): number {
  return shape.length <= 1 ? 1 : numelOf(shape.slice(1));
}

/** True when a tensor with these inputs may be merged in independent row chunks. */
export function isElementwise(method: MergeMethod, tensor: TensorTask): boolean {
  if (tensor.computeDtype) return (tensor.shape.length === 2 || tensor.shape.length === 1) && isElementwiseMergekit(tensor);
  const e = method.elementwise;
  if (!e) return false;
  if (tensor.shape.length !== 2 && tensor.shape.length !== 1) return false;
  return typeof e === "function" ? e(tensor.params, tensor.inputs) : e;
}

export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Where one job's pipeline passed its stage boundaries (epoch ms; 0 = not passed): `loaded` when
 * every input is read and decoded, `merged` when only the write remains. Paths that interleave
 * stages per chunk set them from the summed durations, in order. One per job, returned in its result.
 */
interface StageMarks {
  loaded: number;
  merged: number;
}

export async function mergeTensor(job: TensorJob, registry: MergeMethodRegistry, io: TensorIO): Promise<TensorJobResult> {
  try {
    const start = epochNow();
    const marks: StageMarks = { loaded: 0, merged: 0 };
    const r = await mergeTensorUnchecked(job, registry, io, marks).finally(() => releaseJob(job, io));
    const end = epochNow();
    const loaded = marks.loaded || start;
    r.stages = { start, loaded, merged: Math.max(marks.merged || loaded, loaded), end };
    return r;
  } catch (err) {
    // Name the tensor in every failure (the file is in the message already).
    if (err instanceof MergeloomError && !err.message.includes(job.tensor.name)) {
      const e = new MergeloomError(err.code, `merge ${job.tensor.name}: ${err.message}`, { cause: err, retryable: err.retryable });
      throw e;
    }
    throw err;
  }
}

async function mergeTensorUnchecked(job: TensorJob, registry: MergeMethodRegistry, io: TensorIO, marks: StageMarks): Promise<TensorJobResult> {
  const t = job.tensor;
  const outShape = t.shape;
  const [r0, r1] = job.rows ?? [0, rowsOf(outShape)];
  const outRowElems = rowElems(outShape);
  const chunkShape = outShape.length === 0 ? [] : [r1 - r0, ...outShape.slice(1)];
  let bytesRead = 0;
  void prefetchJob(job, io);

  // A non-float tensor (integer buffer) of one input is copied untouched (passthrough). The plan
  // refuses to merge several; a task that asks anyway (hand-made) fails rather than drop inputs.
  if (!isFloatDType(t.outDtype) || !t.inputs.every((i) => isMergeableDType(i.source.dtype))) {
    if (t.inputs.length !== 1) {
      const bad = t.inputs.find((i) => !isMergeableDType(i.source.dtype)) ?? t.inputs[0];
      throw new MergeloomError(
        "MERGE_FAILED",
        `merge ${t.name} with ${t.method}: input '${bad.model}' has dtype ${bad.source.dtype}, which cannot be merged (mergeable: ${MERGEABLE_DTYPES.join(", ")})`,
      );
    }
    const src = t.inputs[0].source;
    const n = src.byteLength;
    const buf = scratch.get(0, n);
    await io.read(src.uri, src.offset, n, buf);
    return writeOut(t, buf, 0, io, n);
  }

  const method = registry.get(t.method);
  // --numerics mergekit: mergekit's torch arithmetic in the compute dtype, whole tensor or row chunk.
  const mergekit = t.computeDtype;
  const chunkElements = job.chunkElements ?? STREAM_CHUNK_ELEMENTS;
  const numel = numelOf(outShape);
  // A method's streaming form merges in bounded memory, so a tensor over one chunk is streamed. A
  // single-pass stream that takes raw bf16 is also the cheapest path at any size (no fp32 decode or
  // encode) and needs no whole-tensor statistics, so it also serves small tensors and row ranges.
  const large = !job.rows && numel > chunkElements;
  if (!mergekit && method.streaming && outShape.length > 0 && (large || rawBF16Inputs(t))) {
    const stream = guard(t, () =>
      method.streaming!({ tensorName: t.name, shape: outShape, inputs: t.inputs, baseIndex: t.baseIndex, params: t.params, numel }),
    );
    if (stream) {
      const statsPasses = guard(t, () => stream.needsPass(0));
      const rawOnePass = !statsPasses && stream.rawBF16 === true && stream.applyBF16 !== undefined && t.outDtype === "BF16";
      if (large || rawOnePass) return mergeStreamed(job, stream, statsPasses, chunkElements, io, marks);
    }
  }
  const read = await readInputs(t, r0, r1, io);
  bytesRead += read.bytesRead;
  marks.loaded = epochNow();
  const ctx = chunkContext(job, chunkShape, read.inputs, r0 * outRowElems);
  const out = guard(t, () => (mergekit ? mergeMergekit(t.method, ctx, mergekit, r0 * outRowElems, numel, t.computeTorch) : method.merge(ctx)));
  const expect = (r1 - r0) * outRowElems;
  if (out.length !== expect) {
    throw new ParamError(`merge ${t.name} with ${t.method}: method returned ${out.length} values, expected ${expect}`);
  }
  const esz = DTYPE_BYTES[t.outDtype];
  const encoded = encodeFromF32(out, t.outDtype, scratch.get(t.inputs.length + 2, out.length * esz));
  marks.merged = epochNow();
  const warnings = hasNonFinite(encoded, t.outDtype) ? await explainNonFinite(t, io) : undefined;
  const res = writeOut(t, encoded, r0 * outRowElems * esz, io, bytesRead);
  if (warnings) res.warnings = warnings;
  return res;
}

/** How much of each input is asked for first, before the rest of any input. */
const PREFETCH_FIRST_BYTES = 8 << 20;

/** The byte ranges of every input (and added vector) that a job over output rows [r0, r1) reads. */
function inputRanges(t: TensorTask, r0: number, r1: number): Array<{ uri: string; from: number; to: number }> {
  const ranges: Array<{ uri: string; from: number; to: number }> = [];
  for (const spec of t.inputs) {
    for (const src of [spec.source, ...(spec.addVectors ?? []).map((v) => v.source)]) {
      const rows = rowsOf(src.shape);
      const rowBytes = rows > 0 ? src.byteLength / rows : src.byteLength;
      const from = Math.floor(Math.min(r0, rows) * rowBytes);
      const to = rows > 0 ? Math.ceil(Math.min(r1, rows) * rowBytes) : src.byteLength;
      if (to > from) ranges.push({ uri: src.uri, from: src.offset + from, to: src.offset + to });
    }
  }
  return ranges;
}

const jobRows = (job: TensorJob): [number, number] => job.rows ?? [0, rowsOf(job.tensor.shape)];

/**
 * Remote inputs: asks for the rows a job will read, so they stream in while the kernel works
 * rather than a block at a time as it asks — the start of every input first (the kernel reads
 * them side by side), then the rest. Local files need no hint (the page cache reads ahead).
 * Settles (never rejects) once the fetches are asked for; throws at once on a malformed job.
 */
export function prefetchJob(job: TensorJob, io: TensorIO): Promise<unknown> {
  const ranges = inputRanges(job.tensor, ...jobRows(job));
  const asked = [];
  for (const r of ranges) asked.push(io.willNeed(r.uri, r.from, Math.min(r.to - r.from, PREFETCH_FIRST_BYTES)));
  for (const r of ranges)
    if (r.to - r.from > PREFETCH_FIRST_BYTES) asked.push(io.willNeed(r.uri, r.from + PREFETCH_FIRST_BYTES, r.to - r.from - PREFETCH_FIRST_BYTES));
  return Promise.all(asked);
}

/** The job is done with its inputs: remote sources may reuse the memory that held them. */
function releaseJob(job: TensorJob, io: TensorIO): void {
  for (const r of inputRanges(job.tensor, ...jobRows(job))) io.dontNeed(r.uri, r.from, r.to - r.from);
}

/** Bytes per read when scanning inputs for NaN/±inf (a multiple of every element size). */
const SCAN_BYTES = 16 << 20;

/**
 * The merged tensor holds NaN/±inf: a warning when an input already held one (mergekit's result,
 * kept), else a MERGE_FAILED — the merge itself overflowed (e.g. `weight: 1e308`). Scans every
 * input's whole stored tensor, whatever rows this job merged; runs only on this rare path.
 */
async function explainNonFinite(t: TensorTask, io: TensorIO): Promise<string[]> {
  const buf = scratch.get(t.inputs.length + 3, SCAN_BYTES);
  for (const spec of t.inputs) {
    for (const src of [spec.source, ...(spec.addVectors ?? []).map((v) => v.source)]) {
      for (let off = 0; off < src.byteLength; off += SCAN_BYTES) {
        const n = Math.min(SCAN_BYTES, src.byteLength - off);
        const part = buf.subarray(0, n);
        await io.read(src.uri, src.offset + off, n, part);
        if (hasNonFinite(part, src.dtype)) {
          return [
            `merge ${t.name}: input '${spec.model}' (tensor '${src.tensor}' in ${src.uri}) holds NaN or ±inf, and the merged tensor carries it on (kept, as mergekit does)`,
          ];
        }
      }
    }
  }
  throw new MergeloomError(
    "MERGE_FAILED",
    `merge ${t.name} with ${t.method}: the merged tensor holds NaN or ±inf although no input does — the parameters overflow (check weight, lambda, scale and density); nothing is written`,
  );
}

/** Runs a method call, turning a plain exception into a MERGE_FAILED naming tensor and method. */
function guard<T>(t: TensorTask, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof MergeloomError) throw err;
    throw new MergeloomError("MERGE_FAILED", `merge ${t.name} with ${t.method}: ${(err as Error).message}`, { cause: err });
  }
}

/** Every input's rows [r0, r1) in fp32, with its added task vectors applied (scratch buffers). */
async function readInputs(t: TensorTask, r0: number, r1: number, io: TensorIO): Promise<{ inputs: MergeInput[]; bytesRead: number }> {
  const inputs: MergeInput[] = [];
  let bytesRead = 0;
  for (let i = 0; i < t.inputs.length; i++) {
    const spec = t.inputs[i];
    const data = hasTransform(spec) ? await readTransformed(t, i, r0, r1, io) : await readRows(spec.source, t.shape, r0, r1, io, i);
    bytesRead += data.bytesRead;
    for (const v of spec.addVectors ?? []) {
      const d = await readRows(v.source, t.shape, r0, r1, io, t.inputs.length + 1);
      bytesRead += d.bytesRead;
      const a = data.values;
      const b = d.values;
      const s = Math.fround(v.scale);
      for (let k = 0; k < a.length; k++) a[k] += s * b[k];
    }
    inputs.push({ model: spec.model, data: data.values, params: spec.params });
  }
  return { inputs, bytesRead };
}

/** The method's view of rows starting at flat element `start`: its random draws start there too. */
function chunkContext(job: TensorJob, shape: readonly number[], inputs: MergeInput[], start: number): MergeContext {
  const t = job.tensor;
  return {
    tensorName: t.name,
    shape,
    inputs,
    baseIndex: t.baseIndex,
    params: t.params,
    random: (i) => createRandom(job.seed, `${t.name}\u0000${i}`, start),
  };
}

/**
 * The multi-pass path: stats passes over the row chunks, then the apply pass, which encodes and
 * writes each chunk as it goes. Memory is a few chunk-sized buffers whatever the tensor's size;
 * the re-reads of the stats passes come from the page cache. bytesRead counts the input bytes
 * once (as the whole-tensor path does), so throughput figures stay comparable.
 */
async function mergeStreamed(
  job: TensorJob,
  stream: TensorStream,
  statsPasses: boolean,
  chunkElements: number,
  io: TensorIO,
  marks: StageMarks,
): Promise<TensorJobResult> {
  const t = job.tensor;
  // A row range (job.rows) comes only with a single-pass stream: no pass needs the other rows.
  const [first, end] = job.rows ?? [0, rowsOf(t.shape)];
  const rows = end - first;
  const rowLen = rowElems(t.shape);
  const per = Math.max(1, Math.floor(chunkElements / rowLen));
  const tail = t.shape.slice(1);
  const raw = stream.rawBF16 === true && rawBF16Inputs(t);
  const keys = t.inputs.map((_, i) => hashKey(job.seed, `${t.name}\u0000${i}`));
  const randomKey = (i: number): readonly [number, number, number] => [keys[i][0], keys[i][1], keys[i][2]];
  // Raw chunks live in the kernel arena: one slot per input (and the bf16 output), sized for the
  // largest chunk and reused by every chunk and pass of this tensor — or, when all the tensor's
  // inputs fit STREAM_CACHE_BYTES, sized for the whole tensor and read once for every pass.
  const arena = raw ? kernelArena() : undefined;
  arena?.reset();
  const chunkMax = Math.min(rows, per) * rowLen;
  const numel = rows * rowLen;
  const cacheAll = arena !== undefined && statsPasses && numel * 2 * t.inputs.length <= (job.cacheBytes ?? STREAM_CACHE_BYTES);
  const slots = arena ? t.inputs.map(() => arena.alloc((cacheAll ? numel : chunkMax) * 2)) : [];
  const outSlot = arena && t.outDtype === "BF16" && stream.applyBF16 ? arena.alloc(chunkMax * 2) : -1;
  let cached = false;
  let readMs = 0;
  const chunks = async (f: (chunk: StreamChunk, r0: number, bytesRead: number) => void): Promise<void> => {
    for (let r0 = first; r0 < end; r0 += per) {
      const r1 = Math.min(end, r0 + per);
      const start = r0 * rowLen;
      const t0 = epochNow();
      if (arena) {
        const at = cacheAll ? slots.map((s) => s + (start - first * rowLen) * 2) : slots;
        const read = await readRawBF16(t, r0, r1, rowLen, io, arena, at, !cached);
        readMs += epochNow() - t0;
        f({ ctx: chunkContext(job, [r1 - r0, ...tail], read.inputs, start), start, bf16: at, randomKey }, r0, read.bytesRead);
        continue;
      }
      const read = await readInputs(t, r0, r1, io);
      readMs += epochNow() - t0;
      f({ ctx: chunkContext(job, [r1 - r0, ...tail], read.inputs, start), start, randomKey }, r0, read.bytesRead);
    }
    cached = cacheAll;
  };
  const begin = epochNow();
  for (let pass = 0, more = statsPasses; more; more = guard(t, () => stream.needsPass(++pass))) {
    await chunks((chunk) => guard(t, () => stream.stats(pass, chunk)));
  }
  // The stats passes count as loading; reading, merging and writing then interleave per chunk, so
  // the stages get the apply pass's summed read and write durations, in order.
  const statsMs = epochNow() - begin;
  readMs = 0;
  let writeMs = 0;
  const esz = DTYPE_BYTES[t.outDtype];
  const discard = t.dest.uri.startsWith("discard://");
  const hash = discard ? newChecksum() : undefined;
  let bytesRead = 0;
  let bytesWritten = 0;
  let nonFinite = false;
  await chunks((chunk, r0, n) => {
    bytesRead += n;
    const expect = numelOf(chunk.ctx.shape);
    let encoded: Uint8Array;
    if (outSlot >= 0) {
      guard(t, () => stream.applyBF16!(chunk, outSlot));
      nonFinite ||= arena!.k.nonFiniteBF16(outSlot, expect) !== 0;
      encoded = arena!.u8(outSlot, expect * 2);
    } else {
      const out = guard(t, () => stream.apply(chunk));
      if (out.length !== expect) {
        throw new ParamError(`merge ${t.name} with ${t.method}: streaming apply returned ${out.length} values, expected ${expect}`);
      }
      encoded = encodeFromF32(out, t.outDtype, scratch.get(t.inputs.length + 2, out.length * esz));
      nonFinite ||= hasNonFinite(encoded, t.outDtype);
    }
    const w0 = epochNow();
    if (hash) hash.update(encoded);
    else io.write(t.dest.uri, t.dest.offset + r0 * rowLen * esz, encoded);
    writeMs += epochNow() - w0;
    bytesWritten += encoded.byteLength;
  });
  marks.loaded = begin + statsMs + readMs;
  marks.merged = epochNow() - writeMs;
  const warnings = nonFinite ? await explainNonFinite(t, io) : undefined;
  const res: TensorJobResult = hash ? { bytesRead, bytesWritten: 0, sha256: hash.digest("hex") } : { bytesRead, bytesWritten };
  if (warnings) res.warnings = warnings;
  return res;
}

/**
 * Every input's rows [r0, r1) as raw bf16 bits in the arena slots (read unless `read` is false:
 * already there from an earlier pass); each input's fp32 `data` is decoded only if asked for.
 */
async function readRawBF16(
  t: TensorTask,
  r0: number,
  r1: number,
  rowLen: number,
  io: TensorIO,
  arena: KernelArena,
  slots: readonly number[],
  read: boolean,
): Promise<{ inputs: MergeInput[]; bytesRead: number }> {
  const n = (r1 - r0) * rowLen;
  const inputs: MergeInput[] = [];
  for (let i = 0; i < t.inputs.length; i++) {
    const spec = t.inputs[i];
    if (read) await io.read(spec.source.uri, spec.source.offset + r0 * rowLen * 2, n * 2, arena.u8(slots[i], n * 2));
    let data: Float32Array | undefined;
    const slot = i;
    inputs.push({
      model: spec.model,
      params: spec.params,
      get data(): Float32Array {
        return (data ??= decodeToF32(arena.u8(slots[slot], n * 2), "BF16", n <= SCRATCH_F32_MAX ? scratch.f32(slot, n) : new Float32Array(n)));
      },
    });
  }
  return { inputs, bytesRead: n * 2 * t.inputs.length };
}

/** Every input stored as bf16 in the output's row layout, with nothing added: raw bf16 chunks apply. */
function rawBF16Inputs(t: TensorTask): boolean {
  const rowLen = rowElems(t.shape);
  return t.inputs.every((i) => i.source.dtype === "BF16" && !i.addVectors?.length && !hasTransform(i) && rowElems(i.source.shape) === rowLen);
}

function writeOut(t: TensorTask, bytes: Uint8Array, relOffset: number, io: TensorIO, bytesRead: number): TensorJobResult {
  if (t.dest.uri.startsWith("discard://")) {
    return { bytesRead, bytesWritten: 0, sha256: newChecksum().update(bytes).digest("hex") };
  }
  io.write(t.dest.uri, t.dest.offset + relOffset, bytes);
  return { bytesRead, bytesWritten: bytes.byteLength };
}

/** Output rows [r0, r1) of an input with a LoRA delta or a vocabulary row map (fresh buffers). */
async function readTransformed(t: TensorTask, i: number, r0: number, r1: number, io: TensorIO): Promise<{ values: Float32Array; bytesRead: number }> {
  let bytesRead = 0;
  const values = await readInputRows(
    t,
    i,
    r0,
    r1,
    elementReader(
      (uri, off, len, into) => io.read(uri, off, len, into),
      (n) => (bytesRead += n),
    ),
  );
  return { values, bytesRead };
}

/**
 * Reads output rows [r0, r1) of one input as fp32. When the stored tensor is larger than the
 * output (embeddings of models with different vocabularies), the top-left block is taken, as
 * mergekit does.
 */
async function readRows(
  src: TensorSource,
  outShape: readonly number[],
  r0: number,
  r1: number,
  io: TensorIO,
  slot: number,
): Promise<{ values: Float32Array; bytesRead: number }> {
  const esz = DTYPE_BYTES[src.dtype];
  const inRowElems = rowElems(src.shape);
  const outRowElems = rowElems(outShape);
  const rows = r1 - r0;
  const n = rows * inRowElems * esz;
  const buf = scratch.get(slot, n);
  await io.read(src.uri, src.offset + r0 * inRowElems * esz, n, buf);
  // Reuse fp32 scratch only up to a row chunk's size: keeping whole-tensor buffers (embeddings)
  // alive per thread would raise the resident set of non-elementwise methods for good.
  const numel = rows * inRowElems;
  let values = decodeToF32(buf, src.dtype, numel <= SCRATCH_F32_MAX ? scratch.f32(slot, numel) : new Float32Array(numel));
  if (inRowElems !== outRowElems) {
    const cropped = new Float32Array(rows * outRowElems);
    for (let r = 0; r < rows; r++) cropped.set(values.subarray(r * inRowElems, r * inRowElems + outRowElems), r * outRowElems);
    values = cropped;
  }
  return { values, bytesRead: n };
}
