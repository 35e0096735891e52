/**
 * The streaming form of the generalized task-arithmetic methods: the same bytes as the
 * whole-tensor `merge`, computed over row chunks with memory bounded by the chunk.
 *
 * Every non-base input gets the selector of the variant's sparsification kind (gta-selectors.ts:
 * top-k, breadcrumbs, DARE, DELLA, or keep/drop all). The stream runs the stats steps that some
 * selector takes part in — none for task_arithmetic; "norms-and-buckets" for DARE or DELLA with
 * rescale; "norms-and-buckets" and "cut-keys" for TIES or breadcrumbs, and "kept-norm" too when
 * they rescale — each a read of every chunk (δ is recomputed, it is cheap next to reading); the
 * driver's pass p is the p-th of them. Apply then masks each chunk in flat order with the
 * selectors' running state (tie counters, draws), so equal |δ| at a cut are decided by flat index
 * exactly as the whole-tensor sparsifiers do, rescales, and mixes as `merge` does.
 *
 * With raw bf16 inputs (`StreamChunk.bf16`, byte offsets in the kernel arena) nothing is decoded
 * into fp32 copies: the WebAssembly SIMD kernels work in L1-sized blocks — δ, histograms and sums
 * in the stats steps; δ, mask, rescale, mix, the base and the bf16 rounding in apply — each the
 * same operations on the same values as the fp32 path, so the bytes are identical.
 */
import { ParamError } from "../errors/index.js";
import { numelOf } from "@mergeloom/proto/dtype";
import { kernelArena } from "../kernels/wasm-kernels.js";
import { encodeFromF32 } from "../tensor/convert.js";
import type { StreamChunk, StreamInfo, TensorStream } from "./define-merge-method.js";
import { BLOCK, STEPS, isRaw, selectorFactory, type RawSelector, type Selector, type Step } from "./gta-selectors.js";
import {
  addScaled,
  gtaSettings,
  mixTaskVectors,
  numParam,
  requireBase,
  subjectOf,
  weightOf,
  type GtaVariant,
  type TaskVector,
} from "./generalized-task-arithmetic.js";

/** One non-base input of the tensor: where it sits, its weight, and its sparsification. */
interface StreamInput<S extends Selector = Selector> {
  index: number;
  weight: number;
  selector: S;
}

/** The streaming form for these inputs, or undefined when they must be merged whole (della on a 1-D tensor). */
export function gtaStream(v: GtaVariant, info: StreamInfo): TensorStream | undefined {
  requireBase(v.name, info);
  const n = info.numel;
  if (n === 0 || n >= 2 ** 32) return undefined;
  const { normalize, rescale, lambda } = gtaSettings(v, info.params);
  const select = selectorFactory(v.sparsification);
  const inputs: StreamInput[] = [];
  for (let i = 0; i < info.inputs.length; i++) {
    if (i === info.baseIndex) continue;
    const input = info.inputs[i];
    const weight = weightOf(v.name, info.tensorName, input);
    const selector = select({
      index: i,
      density: numParam(input.params, "density", 1),
      gamma: numParam(input.params, "gamma", 0.01),
      epsilon: numParam(input.params, "epsilon", 0.15),
      numel: n,
      shape: info.shape,
      rescale,
      subject: subjectOf(v.name, info.tensorName, input.model),
    });
    if (!selector) return undefined;
    inputs.push({ index: i, weight, selector });
  }
  return new GtaStream(v, inputs, normalize, lambda);
}

/** One fp32 scratch buffer per slot, grown on demand; views share the buffer. */
class Bufs {
  private f: Float32Array[] = [];
  get(i: number, n: number): Float32Array {
    let b = this.f[i];
    if (!b || b.length < n) this.f[i] = b = new Float32Array(n);
    return b.subarray(0, n);
  }
}

/** Arena offsets of the raw path's block buffers (allocated once per tensor). */
interface Work {
  /** One BLOCK of δ per input; dsPtrs lists their offsets and ws the weights, for the mix kernels. */
  ds: number;
  dsPtrs: number;
  ws: number;
  mix: number;
  tmp: number;
}

class GtaStream implements TensorStream {
  /** True unless some selector masks fp32 values only (DELLA): then the inputs come decoded. */
  readonly rawBF16: boolean;
  /** The stats steps these inputs take part in, in STEPS order: the driver's pass p runs steps[p]. */
  private readonly steps: readonly Step[];
  /** The inputs again when every selector computes from raw bf16. */
  private readonly rawInputs?: readonly StreamInput<RawSelector>[];
  private readonly bufs = new Bufs();
  private work?: Work;

  constructor(
    private readonly v: GtaVariant,
    private readonly inputs: readonly StreamInput[],
    private readonly normalize: boolean,
    private readonly lambda: number,
  ) {
    this.steps = STEPS.filter((step) => inputs.some((t) => t.selector.steps.includes(step)));
    if (inputs.every((t): t is StreamInput<RawSelector> => isRaw(t.selector))) this.rawInputs = inputs;
    this.rawBF16 = this.rawInputs !== undefined;
  }

  needsPass(pass: number): boolean {
    const ended = this.steps[pass - 1];
    if (ended !== undefined) for (const t of takingPart(this.inputs, ended)) t.selector.endStep(ended);
    return pass < this.steps.length;
  }

  stats(pass: number, chunk: StreamChunk): void {
    const step = this.steps[pass];
    if (chunk.bf16 && this.rawInputs) {
      const block = this.workspace(this.rawInputs).ds;
      const raw = chunk.bf16;
      const base = raw[chunk.ctx.baseIndex];
      const len = numelOf(chunk.ctx.shape);
      for (const t of takingPart(this.rawInputs, step)) t.selector.statsBF16(step, raw[t.index], base, len, chunk, block);
      return;
    }
    for (const t of takingPart(this.inputs, step)) t.selector.stats(step, this.delta(chunk, t, 0), chunk);
  }

  /** δ = fp32(X − B) of one input over the chunk, into scratch slot `slot`. */
  private delta(chunk: StreamChunk, t: StreamInput, slot: number): Float32Array {
    const ctx = chunk.ctx;
    const base = ctx.inputs[ctx.baseIndex].data;
    const x = ctx.inputs[t.index].data;
    const len = base.length;
    if (x.length !== len) {
      throw new ParamError(
        `${subjectOf(this.v.name, ctx.tensorName, ctx.inputs[t.index].model)}: input has ${x.length} elements but the base has ${len}; inputs must share the base's shape`,
      );
    }
    const d = this.bufs.get(slot, len);
    for (let j = 0; j < len; j++) d[j] = x[j] - base[j];
    return d;
  }

  /** The raw path's block buffers, allocated in the arena on the tensor's first chunk. */
  private workspace(inputs: readonly StreamInput[]): Work {
    if (this.work) return this.work;
    const a = kernelArena();
    const m = inputs.length;
    const w: Work = { ds: a.alloc(4 * BLOCK * Math.max(1, m)), dsPtrs: a.alloc(4 * m), ws: a.alloc(4 * m), mix: a.alloc(4 * BLOCK), tmp: a.alloc(4 * BLOCK) };
    a.u32(w.dsPtrs, m).set(inputs.map((_, t) => w.ds + 4 * BLOCK * t));
    a.f32(w.ws, m).set(inputs.map((t) => t.weight));
    return (this.work = w);
  }

  /**
   * apply from bf16 bits, block by block: per block δ of every input, its mask (running tie
   * counters and draws continue across blocks in flat order), the rescale, the mix, the base and
   * the output encoding — the same operations on the same values as the whole-chunk form. Writes
   * bf16 bits at arena offset `out.bf16`, or fp32 values into `out.f32`.
   */
  private applyRaw(
    chunk: StreamChunk,
    raw: readonly number[],
    inputs: readonly StreamInput<RawSelector>[],
    out: { bf16: number } | { f32: Float32Array },
  ): void {
    const a = kernelArena();
    const w = this.workspace(inputs);
    const k = a.k;
    const ctx = chunk.ctx;
    const base = raw[ctx.baseIndex];
    const len = numelOf(ctx.shape);
    const m = inputs.length;
    const lambda = Math.fround(this.lambda);
    let div = 1;
    if (!this.v.consensus && this.normalize) {
      div = 0;
      for (const t of inputs) div = Math.fround(div + Math.fround(t.weight));
      if (Math.abs(div) < 1e-8) div = 1;
    }
    for (let s = 0; s < len; s += BLOCK) {
      const n = Math.min(BLOCK, len - s);
      for (let j = 0; j < m; j++) {
        const t = inputs[j];
        const d = w.ds + 4 * BLOCK * j;
        k.deltaBF16(d, raw[t.index] + 2 * s, base + 2 * s, n);
        t.selector.maskBlock(d, n, chunk.start + s, chunk);
        const r = t.selector.ratio;
        if (r !== 1) k.scaleF64(d, n, r);
      }
      if (this.v.consensus) k.mixConsensus(w.mix, w.dsPtrs, w.ws, m, n, this.normalize ? 1 : 0);
      else k.mixSum(w.mix, w.dsPtrs, w.ws, m, n, div);
      if ("bf16" in out) k.finishBF16(out.bf16 + 2 * s, w.mix, base + 2 * s, n, lambda);
      else {
        k.finishF32(w.tmp, w.mix, base + 2 * s, n, lambda);
        out.f32.set(a.f32(w.tmp, n), s);
      }
    }
  }

  applyBF16(chunk: StreamChunk, out: number): void {
    const raw = chunk.bf16;
    if (!raw || !this.rawInputs || this.inputs.length === 0) {
      // only the base: its own bits, through fp32 like every other output
      const f = this.apply(chunk);
      const a = kernelArena();
      const bytes = encodeFromF32(f, "BF16");
      a.u16(out, f.length).set(new Uint16Array(bytes.buffer, bytes.byteOffset, f.length));
      return;
    }
    this.applyRaw(chunk, raw, this.rawInputs, { bf16: out });
  }

  apply(chunk: StreamChunk): Float32Array {
    if (chunk.bf16 && this.rawInputs && this.inputs.length > 0) {
      const out = this.bufs.get(0, numelOf(chunk.ctx.shape));
      this.applyRaw(chunk, chunk.bf16, this.rawInputs, { f32: out });
      return out;
    }
    const ctx = chunk.ctx;
    const base = ctx.inputs[ctx.baseIndex].data;
    const len = base.length;
    if (this.inputs.length === 0) return Float32Array.from(base);
    const tvs: TaskVector[] = this.inputs.map((t, slot) => {
      const d = this.delta(chunk, t, slot + 1);
      t.selector.mask(d, chunk);
      const r = t.selector.ratio;
      if (r !== 1) for (let j = 0; j < len; j++) d[j] *= r;
      return { index: t.index, input: ctx.inputs[t.index], delta: d, weight: t.weight };
    });
    return addScaled(base, mixTaskVectors(tvs, len, this.v.consensus, this.normalize), this.lambda);
  }
}

/** The inputs whose selector takes part in `step`. */
function takingPart<T extends StreamInput>(inputs: readonly T[], step: Step): T[] {
  return inputs.filter((t) => t.selector.steps.includes(step));
}
