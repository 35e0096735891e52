/**
 * sce (Select, Calculate, Erase): task vectors τ_i = X_i − B; with select_topk < 1 only the
 * entries with the largest variance across models are kept (in every τ_i); a TIES sign election
 * (sum rule, ties → +) erases disagreeing entries; the survivors are averaged with one weight per
 * model, s_i ∝ mean(τ_i²). Per-model weights are not used (mergekit has none for sce).
 *
 * Numerics: mergekit computes in torch fp32. Variances and the per-model mean squares are
 * accumulated in float64 and rounded to fp32; each output element is rounded once. Among entries
 * of equal variance at the top-k cut, the lower index is kept (torch.topk leaves it unspecified).
 */
import { ParamError } from "../../../proto/errors.js";
import { defineMergeMethod } from "../define-merge-method.js";
import { bool, num } from "../params.js";

const f32 = Math.fround;

/** Mask of the k = int(count_nonzero(var)·topk) entries with the largest population variance. */
function selectMask(tv: readonly Float32Array[], topk: number): Uint8Array | null {
  const n = tv[0].length;
  const N = tv.length;
  if (topk >= 1) return null;
  const mask = new Uint8Array(n);
  if (topk <= 0) return mask;
  const variance = new Float32Array(n);
  let nonzero = 0;
  for (let k = 0; k < n; k++) {
    let m = 0;
    for (let i = 0; i < N; i++) m += tv[i][k];
    m = f32(m / N);
    let v = 0;
    for (let i = 0; i < N; i++) v += (tv[i][k] - m) ** 2;
    variance[k] = v / N;
    if (variance[k] !== 0) nonzero++;
  }
  const kept = Math.trunc(nonzero * topk);
  if (kept === 0) return mask;
  // The cut value by a native numeric sort; entries above it are kept, ties at it by index.
  const cut = variance.slice().sort()[n - kept];
  let taken = 0;
  for (let k = 0; k < n; k++) {
    if (variance[k] > cut) {
      mask[k] = 1;
      taken++;
    }
  }
  for (let k = 0; k < n && taken < kept; k++) {
    if (variance[k] === cut) {
      mask[k] = 1;
      taken++;
    }
  }
  return mask;
}

export const sce = defineMergeMethod({
  name: "sce",
  reference: "https://arxiv.org/abs/2408.07990",
  params: { int8_mask: bool(false), select_topk: num(1.0) },
  modelParams: {},
  base: "required",
  check(ctx) {
    if (ctx.baseIndex < 0) throw new ParamError(`merge ${ctx.tensorName} with sce: a base model is required; set base_model`);
  },
  merge(ctx) {
    if (ctx.baseIndex < 0) throw new ParamError(`merge ${ctx.tensorName} with sce: a base model is required; set base_model`);
    const base = ctx.inputs[ctx.baseIndex].data;
    const others = ctx.inputs.filter((_, i) => i !== ctx.baseIndex).map((i) => i.data);
    if (others.length === 0) return Float32Array.from(base);
    const n = base.length;
    const N = others.length;
    const tv = others.map((x) => {
      const d = new Float32Array(n);
      for (let k = 0; k < n; k++) d[k] = x[k] - base[k];
      return d;
    });
    const topk = typeof ctx.params.select_topk === "number" ? ctx.params.select_topk : 1;
    const mask = selectMask(tv, topk);
    if (mask) for (const d of tv) for (let k = 0; k < n; k++) if (!mask[k]) d[k] = 0;

    // s_i = mean(τ_i²) / Σ_j mean(τ_j²), uniform when the sum is ~0
    const ms = tv.map((d) => {
      let q = 0;
      for (let k = 0; k < n; k++) q += d[k] * d[k];
      return f32(q / Math.max(n, 1));
    });
    const msSum = f32(ms.reduce((a, b) => a + b, 0));
    const s = Math.abs(msSum) < 1e-6 ? ms.map(() => f32(1 / N)) : ms.map((m) => f32(m / msSum));

    const out = new Float32Array(n);
    for (let k = 0; k < n; k++) {
      let sum = 0;
      for (let i = 0; i < N; i++) sum += tv[i][k];
      const maj = sum >= 0 ? 1 : -1;
      let num = 0;
      let den = 0;
      for (let i = 0; i < N; i++) {
        const x = tv[i][k];
        if (Math.sign(x) === maj) {
          num += s[i] * x;
          den += s[i];
        }
      }
      out[k] = base[k] + f32(num / Math.max(f32(den), 1e-6));
    }
    return out;
  },
});
