/**
 * Inputs that are not read as stored: a LoRA adapter's delta added as the tensor loads
 * (`model+adapter`), and embedding rows rearranged to a merged vocabulary (tokenizer merging).
 * Both work on row ranges, so a streamed tensor still holds only a chunk of rows: a LoRA chunk
 * needs B's rows of the chunk and A (rank × columns), and a vocabulary chunk reads the stored
 * rows its runs name.
 */
import { DTYPE_BYTES } from "@mergeloom/proto/dtype";
import { MergeloomError } from "@mergeloom/proto/errors";
import type { DType } from "@mergeloom/proto/dtype";
import type { LoraDelta, TensorInputSpec, TensorSource, TensorSpec } from "@mergeloom/proto/merge-task";
import { decodeToF32, encodeFromF32 } from "../tensor/convert.js";

/** Reads `count` elements of `src` starting at element `start`, as a fresh fp32 array. */
export type ElementReader = (src: TensorSource, start: number, count: number) => Promise<Float32Array>;

export function hasTransform(spec: TensorInputSpec): boolean {
  return spec.lora !== undefined || spec.rowMap !== undefined;
}

function rowLen(shape: readonly number[]): number {
  let n = 1;
  for (let i = 1; i < shape.length; i++) n *= shape[i];
  return n;
}

/** Rounds fp32 values through `dtype` (mergekit computes default and padding rows in it). */
export function roundThrough(values: Float32Array, dtype: DType): Float32Array {
  if (dtype === "F32" || dtype === "F64") return values;
  return decodeToF32(encodeFromF32(values, dtype), dtype, values);
}

/**
 * Stored rows [r0, r1) of input `spec` with its LoRA delta applied, full stored row length.
 * The delta is computed as PEFT's merge_and_unload does in float32 (mergekit's default
 * lora_merge_dtype): each entry of B·A summed in float64, rounded to fp32, times the scale,
 * rounded, and added to the fp32 weight.
 */
export async function readStoredRows(spec: TensorInputSpec, r0: number, r1: number, read: ElementReader): Promise<Float32Array> {
  const cols = rowLen(spec.source.shape);
  const stored = spec.source.shape.length === 0 ? 1 : spec.source.shape[0];
  if (r0 < 0 || r1 > stored) {
    throw new MergeloomError("SHAPE_MISMATCH", `rows [${r0}, ${r1}) of '${spec.model}' ${spec.source.tensor} are outside its ${stored} stored rows`);
  }
  const w = await read(spec.source, r0 * cols, (r1 - r0) * cols);
  if (spec.lora) await addLoraDelta(w, spec.lora, spec.source.shape, r0, r1, read);
  return w;
}

async function addLoraDelta(w: Float32Array, lora: LoraDelta, shape: readonly number[], r0: number, r1: number, read: ElementReader): Promise<void> {
  const cols = rowLen(shape);
  const rank = lora.a.shape[0];
  const rows = r1 - r0;
  const s = Math.fround(lora.scale);
  if (!lora.transpose) {
    // A [rank, cols], B [rows, rank]: the chunk needs B's rows [r0, r1) and all of A.
    const a = await read(lora.a, 0, rank * cols);
    const b = await read(lora.b, r0 * rank, rows * rank);
    const acc = new Float64Array(cols);
    for (let i = 0; i < rows; i++) {
      acc.fill(0);
      for (let k = 0; k < rank; k++) {
        const bik = b[i * rank + k];
        if (bik === 0) continue;
        const ak = k * cols;
        for (let j = 0; j < cols; j++) acc[j] += bik * a[ak + j];
      }
      const o = i * cols;
      for (let j = 0; j < cols; j++) w[o + j] = Math.fround(w[o + j] + Math.fround(Math.fround(acc[j]) * s));
    }
    return;
  }
  // Transposed: A [rank, allRows] (only columns [r0, r1) are needed), B [cols, rank].
  const allRows = lora.a.shape[1];
  const a = new Float32Array(rank * rows);
  for (let k = 0; k < rank; k++) a.set(await read(lora.a, k * allRows + r0, rows), k * rows);
  const b = await read(lora.b, 0, cols * rank);
  for (let i = 0; i < rows; i++) {
    const o = i * cols;
    for (let j = 0; j < cols; j++) {
      let acc = 0;
      for (let k = 0; k < rank; k++) acc += b[j * rank + k] * a[k * rows + i];
      w[o + j] = Math.fround(w[o + j] + Math.fround(Math.fround(acc) * s));
    }
  }
}

/**
 * Rows [r0, r1) of input `i` of tensor `t` as the merge method sees them: rearranged to the merged
 * vocabulary when `t.vocab` is set, LoRA applied, cropped to the output's row length.
 */
export async function readInputRows(t: TensorSpec, i: number, r0: number, r1: number, read: ElementReader): Promise<Float32Array> {
  const spec = t.inputs[i];
  const outCols = rowLen(t.shape);
  if (!spec.rowMap || !t.vocab) return crop(await readStoredRows(spec, r0, r1, read), rowLen(spec.source.shape), outCols);
  const out = new Float32Array((r1 - r0) * outCols);
  const vocab = t.vocab;
  const filled = new Uint8Array(r1 - r0);
  const runs = spec.rowMap.runs;
  for (let k = 0; k + 2 < runs.length; k += 3) {
    const [outStart, inStart, len] = [runs[k], runs[k + 1], runs[k + 2]];
    const lo = Math.max(r0, outStart);
    const hi = Math.min(r1, outStart + len);
    if (lo >= hi) continue;
    const rows = await readStoredRows(spec, inStart + (lo - outStart), inStart + (hi - outStart), read);
    out.set(crop(rows, rowLen(spec.source.shape), outCols), (lo - r0) * outCols);
    filled.fill(1, lo - r0, hi - r0);
  }
  const defaults = new Map(vocab.defaults.map((d) => [d.row, d]));
  let pad: Float32Array | undefined;
  for (let r = r0; r < r1; r++) {
    if (filled[r - r0]) continue;
    if (r >= vocab.rows) {
      pad ??= await paddingRow(t, i, read);
      out.set(pad, (r - r0) * outCols);
      continue;
    }
    const d = defaults.get(r);
    if (d) out.set(await defaultRow(t, d.from, read), (r - r0) * outCols);
    // else: no model has the token and no default was planned; mergekit leaves the row zero
  }
  return out;
}

function crop(values: Float32Array, inCols: number, outCols: number): Float32Array {
  if (inCols === outCols) return values;
  if (inCols < outCols) throw new MergeloomError("SHAPE_MISMATCH", `input rows have ${inCols} values, fewer than the output's ${outCols}`);
  const rows = values.length / inCols;
  const out = new Float32Array(rows * outCols);
  for (let r = 0; r < rows; r++) out.set(values.subarray(r * inCols, r * inCols + outCols), r * outCols);
  return out;
}

/**
 * mergekit's default embedding of a token: a zero row, one model's row, or the mean of several,
 * summed and divided in the tensor's dtype (`embed += row; embed /= count` on torch tensors).
 */
async function defaultRow(t: TensorSpec, from: ReadonlyArray<readonly [number, number]>, read: ElementReader): Promise<Float32Array> {
  const outCols = rowLen(t.shape);
  const acc = new Float32Array(outCols);
  const dtype = t.vocab!.dtype;
  for (const [input, row] of from) {
    const spec = t.inputs[input];
    const v = crop(await readStoredRows(spec, row, row + 1, read), rowLen(spec.source.shape), outCols);
    for (let j = 0; j < outCols; j++) acc[j] += v[j];
    roundThrough(acc, dtype);
  }
  if (from.length > 1) {
    for (let j = 0; j < outCols; j++) acc[j] /= from.length;
    roundThrough(acc, dtype);
  }
  return acc;
}

/** Rows a padded vocabulary adds: the mean of this input's vocabulary rows (one extra pass over them). */
async function paddingRow(t: TensorSpec, i: number, read: ElementReader): Promise<Float32Array> {
  const outCols = rowLen(t.shape);
  const rows = t.vocab!.rows;
  const sum = new Float64Array(outCols);
  const per = Math.max(1, Math.floor((1 << 20) / outCols));
  for (let r0 = 0; r0 < rows; r0 += per) {
    const r1 = Math.min(rows, r0 + per);
    const v = await readInputRows(t, i, r0, r1, read);
    for (let r = 0; r < r1 - r0; r++) for (let j = 0; j < outCols; j++) sum[j] += v[r * outCols + j];
  }
  const mean = new Float32Array(outCols);
  for (let j = 0; j < outCols; j++) mean[j] = sum[j] / rows;
  return roundThrough(mean, t.vocab!.dtype);
}

/** An ElementReader over byte reads: `readBytes(uri, offset, length, into)`. */
export function elementReader(
  readBytes: (uri: string, offset: number, length: number, into: Uint8Array) => Promise<void>,
  onBytes?: (n: number) => void,
): ElementReader {
  return async (src, start, count) => {
    const esz = DTYPE_BYTES[src.dtype];
    const buf = new Uint8Array(count * esz);
    await readBytes(src.uri, src.offset + start * esz, count * esz, buf);
    onBytes?.(count * esz);
    return decodeToF32(buf, src.dtype, new Float32Array(count));
  };
}
