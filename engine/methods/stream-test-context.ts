/**
 * Test support for the streaming forms of merge methods: writes a case's inputs to temp files,
 * merges the tensor with `mergeTensor` whole and in several row-chunk sizes, and compares bytes.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { numelOf } from "@mergeloom/proto/dtype";
import { ParamError } from "../errors/index.js";
import type { TensorTask } from "@mergeloom/proto/merge-task";
import { createRandom } from "../tensor/random.js";
import { createDefaultRegistry } from "./all-methods.js";
import { mergeTensor, rowElems, rowsOf } from "../driver/merge-tensor.js";
import type { ParamValue } from "./params.js";
import { TensorIO } from "../driver/tensor-io.js";

type CaseDType = "F32" | "BF16";

export interface StreamCase {
  method: string;
  shape: number[];
  params?: Record<string, ParamValue>;
  /** Per-model parameters of the non-base models, in task order. */
  models: Record<string, ParamValue>[];
  /** Where the base sits among the inputs (default "last"), or "none". */
  base?: "last" | "first" | "none";
  dtype?: CaseDType;
  outDtype?: CaseDType;
  /** Input i's values (default: a random base and small random deltas). */
  values?: (i: number, n: number) => Float32Array;
}

/** A test title naming the case. */
export function describeCase(c: StreamCase): string {
  const p = c.params ? ` ${JSON.stringify(c.params)}` : "";
  return `${JSON.stringify(c.shape)}${p} ${JSON.stringify(c.models)} base ${c.base ?? "last"} ${c.dtype ?? "F32"}\u2192${c.outDtype ?? "F32"}`;
}

/** Values on a coarse grid (multiples of 1/16 in [−1, 1]): many exact ties. */
export function gridValues(seed: number, n: number): Float32Array {
  const r = createRandom(seed, "grid");
  return Float32Array.from({ length: n }, () => Math.round((r() - 0.5) * 32) / 16);
}

const f32Bits = (x: number): number => new Uint32Array(Float32Array.of(x).buffer)[0];
const fromBits = (b: number): number => new Float32Array(Uint32Array.of(b).buffer)[0];

function decode(bytes: Uint8Array, dtype: CaseDType): Float32Array {
  const b = Uint8Array.from(bytes);
  if (dtype === "F32") return new Float32Array(b.buffer);
  return Float32Array.from(new Uint16Array(b.buffer), (h) => fromBits(h << 16));
}

export class StreamFixture {
  private readonly dir = mkdtempSync(join(tmpdir(), "mergeloom-method-stream-"));
  private readonly io = new TensorIO();
  readonly registry = createDefaultRegistry();
  private files = 0;

  close(): void {
    this.io.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private baseIndex(c: StreamCase): number {
    const base = c.base ?? "last";
    return base === "none" ? -1 : base === "first" ? 0 : c.models.length;
  }

  /** Every input's values in task order (bf16 cases: truncated to bf16, as stored). */
  inputValues(c: StreamCase): Float32Array[] {
    const n = numelOf(c.shape);
    const count = c.models.length + (this.baseIndex(c) >= 0 ? 1 : 0);
    const base = Float32Array.from({ length: n }, createRandom(7, "base"));
    const values = Array.from({ length: count }, (_, i) => {
      if (c.values) return c.values(i, n);
      if (i === this.baseIndex(c)) return base;
      const r = createRandom(11 + i, "delta");
      return Float32Array.from(base, (b) => b + (r() - 0.5) * 0.2);
    });
    if (c.dtype !== "BF16") return values;
    return values.map((v) => Float32Array.from(v, (x) => fromBits(f32Bits(x) & 0xffff0000)));
  }

  private task(c: StreamCase, dest: string): TensorTask {
    const dtype = c.dtype ?? "F32";
    const outDtype = c.outDtype ?? "F32";
    const n = numelOf(c.shape);
    const esz = dtype === "F32" ? 4 : 2;
    const baseIndex = this.baseIndex(c);
    const inputs = this.inputValues(c).map((v, i) => {
      const uri = join(this.dir, `in${this.files++}`);
      const bytes = dtype === "F32" ? new Uint8Array(v.buffer) : new Uint8Array(Uint16Array.from(new Uint32Array(v.buffer), (b) => b >>> 16).buffer);
      writeFileSync(uri, bytes);
      const source = { uri, offset: 0, byteLength: n * esz, dtype, shape: c.shape, tensor: "w" };
      if (i === baseIndex) return { model: "base", source, params: {} };
      const m = i - (baseIndex === 0 ? 1 : 0);
      return { model: `m${m + 1}`, source, params: c.models[m] };
    });
    return {
      name: "model.embed_tokens.weight",
      shape: c.shape,
      outDtype,
      method: c.method,
      params: c.params ?? {},
      inputs,
      baseIndex,
      dest: { uri: dest, offset: 0, byteLength: n * (outDtype === "F32" ? 4 : 2) },
    };
  }

  /** Merges the case with this chunk size and returns the written bytes. */
  async run(c: StreamCase, chunkElements: number): Promise<Buffer> {
    const dest = join(this.dir, `out${this.files++}`);
    const t = this.task(c, dest);
    writeFileSync(dest, new Uint8Array(t.dest.byteLength));
    await mergeTensor({ tensor: t, seed: 3, chunkElements }, this.registry, this.io);
    return readFileSync(dest);
  }

  /** The method's streaming form for the case's tensor (undefined when it is merged whole). */
  stream(c: StreamCase): unknown {
    const t = this.task(c, "discard://x");
    const info = { tensorName: t.name, shape: t.shape, inputs: t.inputs, baseIndex: t.baseIndex, params: t.params, numel: numelOf(t.shape) };
    return this.registry.get(c.method).streaming?.(info);
  }

  /** Chunk sizes in elements: 1, 2, 3, 5 and rows − 1 rows (some not dividing the rows). */
  chunkSizes(shape: readonly number[]): number[] {
    const rows = rowsOf(shape);
    const row = rowElems(shape);
    const per = [1, 2, 3, 5, rows - 1].filter((k) => k >= 1 && k < rows);
    assert.ok(
      per.some((k) => rows % k !== 0),
      "some chunk size must not divide the rows",
    );
    // one element (below a row) gives one row per chunk too; the Set drops repeated sizes
    return [...new Set([1, ...per.map((k) => k * row)])];
  }

  /**
   * Asserts the case streams and every chunk size gives the whole merge's bytes; returns the
   * whole merge's output.
   */
  async assertStreamsLikeWhole(c: StreamCase): Promise<Float32Array> {
    assert.notEqual(this.stream(c), undefined, "the method must stream this case");
    const whole = await this.run(c, Number.MAX_SAFE_INTEGER);
    for (const size of this.chunkSizes(c.shape)) {
      const streamed = await this.run(c, size);
      assert.ok(streamed.equals(whole), `chunks of ${size} elements: streamed bytes differ from the whole-tensor merge`);
    }
    return decode(whole, c.outDtype ?? "F32");
  }

  /** assertStreamsLikeWhole, and the output differs from every input and is finite. */
  async assertMergesStreamed(c: StreamCase): Promise<void> {
    const out = await this.assertStreamsLikeWhole(c);
    for (const [i, v] of this.inputValues(c).entries()) {
      assert.ok(
        out.some((x, k) => x !== v[k]),
        `the output equals input ${i}`,
      );
    }
    assert.ok(out.every(Number.isFinite), "the output has non-finite values");
  }

  /** The whole merge fails with a ParamError matching `pattern`, and streamed merges with the same message. */
  async assertSameParamError(c: StreamCase, pattern: RegExp): Promise<void> {
    const failure = (p: Promise<unknown>): Promise<unknown> =>
      p.then(
        () => assert.fail("the merge did not fail"),
        (e: unknown) => e,
      );
    const whole = await failure(this.run(c, Number.MAX_SAFE_INTEGER));
    assert.ok(whole instanceof ParamError && pattern.test(whole.message), `whole merge: ${String(whole)}`);
    for (const size of [1, numelOf(c.shape) - 1]) {
      const streamed = await failure(this.run(c, size));
      assert.ok(streamed instanceof ParamError, `streamed merge: ${String(streamed)}`);
      assert.equal(streamed.message, whole.message);
    }
  }
}
