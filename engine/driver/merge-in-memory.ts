/**
 * Merges a whole plan into fp32 arrays in memory (no destination file): what an evolutionary
 * search needs to score hundreds of candidates over the same few models. The numerics are
 * `mergeTensor`'s — decode to fp32, top-left crop, task-vector transplant, method, then rounding
 * to the output dtype — so a candidate scores exactly as its config merged by `mergeloom merge`.
 *
 * Decoded inputs are cached by (uri, offset): the second candidate over the same models reads and
 * decodes nothing. Methods receive copies, so a method that works in place cannot poison the cache.
 * Whole tensors are merged (never row chunks), which matches `mergeTensor` for every tensor below
 * its chunk threshold (4M elements) and for every non-random method above it.
 */
import { DTYPE_BYTES, isFloatDType } from "@mergeloom/proto/dtype";
import { MergeloomError } from "@mergeloom/proto/errors";
import { ParamError } from "../errors/index.js";
import type { TensorSource, TensorSpec } from "@mergeloom/proto/merge-task";
import { decodeToF32, encodeFromF32 } from "../tensor/convert.js";
import { createRandom } from "../tensor/random.js";
import type { MergeContext, MergeInput } from "../methods/define-merge-method.js";
import type { MergeMethodRegistry } from "../methods/merge-method-registry.js";
import { rowElems, rowsOf } from "./merge-tensor.js";
import type { TensorIO } from "./tensor-io.js";
import { hasTransform, readInputRows } from "./transform-input.js";

/** The part of a planned tensor the in-memory merge needs (a TensorTask without its destination). */
export type InMemoryTensor = TensorSpec;

export interface MergedTensor {
  data: Float32Array;
  shape: number[];
}

export class InMemoryMerger {
  private readonly cache = new Map<string, Float32Array>();
  private cachedBytes = 0;
  bytesRead = 0;

  constructor(
    private readonly registry: MergeMethodRegistry,
    private readonly io: TensorIO,
  ) {}

  /** Decoded fp32 bytes held by the input cache. */
  get cacheBytes(): number {
    return this.cachedBytes;
  }

  /**
   * Every floating-point output tensor, as fp32 values already rounded to its output dtype.
   * Integer tensors are left out (evaluation graphs take float weights only).
   */
  async mergeAll(tensors: readonly InMemoryTensor[], seed: number): Promise<Map<string, MergedTensor>> {
    const out = new Map<string, MergedTensor>();
    for (const t of tensors) {
      const merged = await this.mergeOne(t, seed);
      if (merged) out.set(t.name, merged);
    }
    return out;
  }

  async mergeOne(t: InMemoryTensor, seed: number): Promise<MergedTensor | undefined> {
    if (!isFloatDType(t.outDtype) || !t.inputs.every((i) => isFloatDType(i.source.dtype))) return undefined;
    const method = this.registry.get(t.method);
    const inputs: MergeInput[] = [];
    for (const [i, spec] of t.inputs.entries()) {
      const data = hasTransform(spec) ? await this.transformed(t, i) : await this.cropped(spec.source, t.shape);
      for (const v of spec.addVectors ?? []) {
        const b = await this.cropped(v.source, t.shape);
        const s = Math.fround(v.scale);
        for (let k = 0; k < data.length; k++) data[k] += s * b[k];
      }
      inputs.push({ model: spec.model, data, params: spec.params });
    }
    const ctx: MergeContext = {
      tensorName: t.name,
      shape: t.shape,
      inputs,
      baseIndex: t.baseIndex,
      params: t.params,
      random: (i) => createRandom(seed, `${t.name}\u0000${i}`),
    };
    let values: Float32Array;
    try {
      values = method.merge(ctx);
    } catch (err) {
      if (err instanceof MergeloomError) throw err;
      throw new MergeloomError("MERGE_FAILED", `merge ${t.name} with ${t.method}: ${(err as Error).message}`, { cause: err });
    }
    const expect = rowsOf(t.shape) * rowElems(t.shape);
    if (values.length !== expect) {
      throw new ParamError(`merge ${t.name} with ${t.method}: method returned ${values.length} values, expected ${expect}`);
    }
    // Round through the output dtype exactly as the file writer would, then read back.
    if (t.outDtype !== "F32") values = decodeToF32(encodeFromF32(values, t.outDtype), t.outDtype);
    else if (inputs.some((i) => i.data === values)) values = values.slice();
    return { data: values, shape: t.shape.slice() };
  }

  /** An input with a LoRA delta or a vocabulary row map, read through the decoded-tensor cache. */
  private async transformed(t: InMemoryTensor, i: number): Promise<Float32Array> {
    return readInputRows(t, i, 0, rowsOf(t.shape), async (src, start, count) => (await this.decoded(src)).slice(start, start + count));
  }

  /** A fresh copy of the input, cropped to the output's leading rows and row length. */
  private async cropped(src: TensorSource, outShape: readonly number[]): Promise<Float32Array> {
    const full = await this.decoded(src);
    const rows = rowsOf(outShape);
    const inRow = rowElems(src.shape);
    const outRow = rowElems(outShape);
    if (inRow === outRow) return full.slice(0, rows * outRow);
    const out = new Float32Array(rows * outRow);
    for (let r = 0; r < rows; r++) out.set(full.subarray(r * inRow, r * inRow + outRow), r * outRow);
    return out;
  }

  private async decoded(src: TensorSource): Promise<Float32Array> {
    const key = `${src.uri}\u0000${src.offset}`;
    let v = this.cache.get(key);
    if (!v) {
      const buf = new Uint8Array(src.byteLength);
      await this.io.read(src.uri, src.offset, src.byteLength, buf);
      this.bytesRead += src.byteLength;
      v = decodeToF32(buf, src.dtype, new Float32Array(src.byteLength / DTYPE_BYTES[src.dtype]));
      this.cache.set(key, v);
      this.cachedBytes += v.byteLength;
    }
    return v;
  }

  clear(): void {
    this.cache.clear();
    this.cachedBytes = 0;
  }
}
