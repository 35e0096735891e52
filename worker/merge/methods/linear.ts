/**
 * linear: Σ w_i·X_i, divided by Σ w_i when `normalize` (default true). Every input takes part,
 * the base included when the config sets one (mergekit appends it as an ordinary source).
 *
 * Numerics: weights are rounded to fp32 (mergekit builds an fp32 weight tensor); each output
 * element is accumulated in float64 and rounded once, which differs from mergekit's fp32
 * summation by at most fp32 rounding.
 */
import { ParamError } from "../../../proto/errors.js";
import { defineMergeMethod, type MergeInput } from "../define-merge-method.js";
import { bool, num } from "../params.js";

/** Weights with |Σw| below this count as summing to zero (mergekit would divide by ~0). */
const ZERO_SUM = 1e-8;

function weightsOf(tensorName: string, inputs: readonly Pick<MergeInput, "model" | "params">[]): number[] {
  if (inputs.length === 0) throw new ParamError(`merge ${tensorName} with linear: no input models`);
  return inputs.map((inp) => {
    const w = inp.params.weight;
    if (typeof w !== "number") {
      throw new ParamError(
        `merge ${tensorName} with linear: model '${inp.model}' has no weight; add a weight for it (parameters: {weight: ...} under that model, or a top-level weight)`,
      );
    }
    return Math.fround(w);
  });
}

function checkSum(tensorName: string, weights: readonly number[], normalize: boolean): void {
  if (!normalize) return;
  const sum = weights.reduce((a, b) => a + b, 0);
  if (!(Math.abs(sum) >= ZERO_SUM)) {
    throw new ParamError(
      `merge ${tensorName} with linear: weights sum to ${sum} with normalize: true, so the result would be inf/nan; change the weights or set normalize: false`,
    );
  }
}

export const linear = defineMergeMethod({
  name: "linear",
  reference: "https://arxiv.org/abs/2203.05482",
  params: { normalize: bool(true) },
  modelParams: { weight: num() },
  base: "none",
  elementwise: true,
  check(ctx) {
    checkSum(ctx.tensorName, weightsOf(ctx.tensorName, ctx.inputs), ctx.params.normalize !== false);
  },
  merge(ctx) {
    const weights = weightsOf(ctx.tensorName, ctx.inputs);
    const normalize = ctx.params.normalize !== false;
    checkSum(ctx.tensorName, weights, normalize);
    const div = normalize ? Math.fround(weights.reduce((a, b) => a + b, 0)) : 1;
    const n = ctx.inputs[0].data.length;
    const acc = new Float64Array(n);
    for (let m = 0; m < ctx.inputs.length; m++) {
      const x = ctx.inputs[m].data;
      const w = weights[m];
      for (let k = 0; k < n; k++) acc[k] += w * x[k];
    }
    const out = new Float32Array(n);
    for (let k = 0; k < n; k++) out[k] = acc[k] / div;
    return out;
  },
});

/** bf16 bits → the exact value, for the fused kernel (bf16→f32 is a shift, so a table is exact). */
let bf16Table: Float64Array | undefined;
function bf16Values(): Float64Array {
  if (!bf16Table) {
    bf16Table = new Float64Array(65536);
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (let h = 0; h < 65536; h++) {
      u[0] = h << 16;
      bf16Table[h] = f[0];
    }
  }
  return bf16Table;
}

const BLOCK = 1 << 14;
const blockF32 = new Float32Array(BLOCK);
const blockU32 = new Uint32Array(blockF32.buffer);

/**
 * linear straight from bf16 bits to bf16 bits, without fp32 copies of the inputs: the same
 * float64 accumulation in the same order, the same single rounding to fp32 and the same
 * round-to-nearest-even to bf16 as `merge` + the driver's conversions, so the bytes are identical.
 */
export function mergeLinearBF16(
  ctx: { tensorName: string; inputs: readonly Pick<MergeInput, "model" | "params">[]; params: Record<string, unknown> },
  srcs: readonly Uint16Array[],
  out: Uint16Array,
): void {
  const weights = weightsOf(ctx.tensorName, ctx.inputs);
  const normalize = ctx.params.normalize !== false;
  checkSum(ctx.tensorName, weights, normalize);
  const div = normalize ? Math.fround(weights.reduce((a, b) => a + b, 0)) : 1;
  const lut = bf16Values();
  const n = out.length;
  const m = srcs.length;
  for (let s = 0; s < n; s += BLOCK) {
    const len = Math.min(BLOCK, n - s);
    if (m === 3) {
      const [a, b, c] = srcs;
      const [wa, wb, wc] = weights;
      for (let k = 0; k < len; k++) {
        let acc = 0;
        acc += wa * lut[a[s + k]];
        acc += wb * lut[b[s + k]];
        acc += wc * lut[c[s + k]];
        blockF32[k] = acc / div;
      }
    } else if (m === 2) {
      const [a, b] = srcs;
      const [wa, wb] = weights;
      for (let k = 0; k < len; k++) {
        let acc = 0;
        acc += wa * lut[a[s + k]];
        acc += wb * lut[b[s + k]];
        blockF32[k] = acc / div;
      }
    } else {
      for (let k = 0; k < len; k++) {
        let acc = 0;
        for (let i = 0; i < m; i++) acc += weights[i] * lut[srcs[i][s + k]];
        blockF32[k] = acc / div;
      }
    }
    for (let k = 0; k < len; k++) {
      const bits = blockU32[k];
      out[s + k] = (bits & 0x7fffffff) > 0x7f800000 ? (bits >>> 16) | 0x0040 : (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
    }
  }
}
