/**
 * model_stock: interpolates between the base and the average of the other models with
 * t = N·cos/(1 + (N−1)·cos), where cos is the mean pairwise cosine of the task vectors, over the
 * whole tensor or, with `filter_wise`, per row (vectors along the last dim; a 1-D tensor is one
 * row). t is not clamped, as in mergekit.
 *
 * Numerics: mergekit computes in torch fp32. Norms and dot products are accumulated in float64
 * and rounded to fp32, t is computed in fp32, and each output element is rounded once.
 */
import { ParamError } from "../../../proto/errors.js";
import { defineMergeMethod, type MergeContext } from "../define-merge-method.js";
import { bool } from "../params.js";

const f32 = Math.fround;

function validate(ctx: Pick<MergeContext, "tensorName" | "baseIndex"> & { inputs: readonly unknown[] }): void {
  if (ctx.baseIndex < 0) throw new ParamError(`merge ${ctx.tensorName} with model_stock: a base model is required; set base_model`);
  if (ctx.inputs.length === 1) return; // only the base: passed through
  if (ctx.inputs.length < 3) {
    throw new ParamError(`merge ${ctx.tensorName} with model_stock: requires at least 3 models (the base plus two or more others), got ${ctx.inputs.length}`);
  }
}

export const modelStock = defineMergeMethod({
  name: "model_stock",
  reference: "https://arxiv.org/abs/2403.19522",
  params: { filter_wise: bool(false) },
  modelParams: {},
  base: "required",
  check: validate,
  merge(ctx) {
    validate(ctx);
    const base = ctx.inputs[ctx.baseIndex].data;
    if (ctx.inputs.length === 1) return Float32Array.from(base);
    const ws = ctx.inputs.filter((_, i) => i !== ctx.baseIndex).map((i) => i.data);
    const N = ws.length;
    const n = base.length;
    const rowLen = ctx.params.filter_wise === true && ctx.shape.length >= 1 ? ctx.shape[ctx.shape.length - 1] : n;
    const rows = rowLen === 0 ? 0 : n / rowLen;
    const out = new Float32Array(n);
    const off = ws.map(() => new Float64Array(rowLen));
    for (let r = 0; r < rows; r++) {
      const s = r * rowLen;
      for (let i = 0; i < N; i++) for (let j = 0; j < rowLen; j++) off[i][j] = f32(ws[i][s + j] - base[s + j]);
      const norms = off.map((o) => {
        let q = 0;
        for (let j = 0; j < rowLen; j++) q += o[j] * o[j];
        return f32(Math.sqrt(q));
      });
      let cosSum = 0;
      let pairs = 0;
      for (let i = 0; i < N; i++) {
        for (let k = i + 1; k < N; k++) {
          let d = 0;
          for (let j = 0; j < rowLen; j++) d += off[i][j] * off[k][j];
          const c = f32(f32(d) / Math.max(f32(norms[i] * norms[k]), 1e-6));
          cosSum += Math.min(1, Math.max(-1, c));
          pairs++;
        }
      }
      const cos = f32(cosSum / pairs);
      const t = f32(f32(N * cos) / f32(1 + f32((N - 1) * cos)));
      const u = f32(1 - t);
      for (let j = 0; j < rowLen; j++) {
        let sum = 0;
        for (let i = 0; i < N; i++) sum += ws[i][s + j];
        out[s + j] = t * f32(sum / N) + u * base[s + j];
      }
    }
    return out;
  },
});
