/**
 * ModelStockMergeTask.execute in torch's arithmetic (`--numerics mergekit`): offsets w_i − w_0,
 * pairwise cos = ((o_i·o_j).sum(-1) / (‖o_i‖‖o_j‖).clamp(min=1e-6)).clamp(−1, 1), their mean,
 * t = (N·cos)/(1 + (N−1)·cos), w_avg = sum(ws)/N (Python's sum, starting from 0), and
 * t·w_avg + (1 − t)·w_0. Over the flattened tensor, or per row with `filter_wise`.
 */
import { ParamError } from "../errors/index.js";
import type { MergekitContext, MergekitMethod } from "./mergekit-context.js";
import { add, addScalar, div, divScalar, mul, mulScalar, norm, roundTo, rsubScalar, sub, sumAll, sumAllF32, sumDim0 } from "./torch-float.js";

export const modelStockMergekit: MergekitMethod = {
  elementwise: () => false,
  merge(ctx: MergekitContext): Float32Array {
    const { dt, profile: p } = ctx;
    if (ctx.baseIndex < 0) throw new ParamError(`merge ${ctx.tensorName} with model_stock: a base model is required; set base_model`);
    const w0 = ctx.inputs[ctx.baseIndex].data;
    if (ctx.inputs.length === 1) return Float32Array.from(w0);
    if (ctx.inputs.length < 3)
      throw new ParamError(`merge ${ctx.tensorName} with model_stock: requires at least 3 models (base plus two+ others), got ${ctx.inputs.length}`);
    const ws = ctx.inputs.filter((_, i) => i !== ctx.baseIndex).map((i) => i.data);
    const n = w0.length;
    const filterWise = ctx.params.filter_wise === true;
    const cols = filterWise && ctx.shape.length >= 2 ? n / ctx.shape[0] : n;
    const rows = n / cols;
    const N = ws.length;
    const offsets = ws.map((w) => {
      const o = new Float32Array(n);
      for (let j = 0; j < n; j++) o[j] = sub(dt, w[j], w0[j]);
      return o;
    });
    const norms = offsets.map((o) => Array.from({ length: rows }, (_, r) => norm(p, dt, o, r * cols, cols)));
    const K = (N * (N - 1)) / 2;
    const cos = new Float32Array(K * rows); // [K, rows] as torch.stack(cos_thetas)
    const prod = new Float32Array(cols);
    let k = 0;
    for (let i = 0; i < N; i++) {
      for (let q = i + 1; q < N; q++, k++) {
        for (let r = 0; r < rows; r++) {
          const a = offsets[i];
          const b = offsets[q];
          for (let j = 0; j < cols; j++) prod[j] = mul(dt, a[r * cols + j], b[r * cols + j]);
          const dot = sumAll(dt, prod, p.lanes);
          const np = Math.max(mul(dt, norms[i][r], norms[q][r]), roundTo(dt, 1e-6));
          cos[k * rows + r] = Math.min(1, Math.max(-1, div(dt, dot, np)));
        }
      }
    }
    // mean(dim=0): torch 2.x sums bf16/fp16 in fp32, divides in fp32, then rounds once.
    const t = new Float32Array(rows);
    const meanDt = p.scalarOpmath ? "F32" : dt;
    if (rows === 1)
      t[0] = roundTo(
        meanDt,
        sumAllF32(meanDt, K, (j) => cos[j], p.lanes),
      );
    else sumDim0(meanDt, K, rows, (r, j) => cos[r * rows + j], t, p.lanes);
    for (let r = 0; r < rows; r++) {
      const c = roundTo(dt, divScalar(p, meanDt, t[r], K));
      t[r] = div(dt, mulScalar(p, dt, c, N), addScalar(dt, mulScalar(p, dt, c, N - 1), 1));
    }
    const out = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      let s = addScalar(dt, ws[0][j], 0); // Python's sum() starts from 0
      for (let i = 1; i < N; i++) s = add(dt, s, ws[i][j]);
      const avg = divScalar(p, dt, s, N);
      const tr = t[Math.floor(j / cols)];
      out[j] = add(dt, mul(dt, tr, avg), mul(dt, rsubScalar(dt, 1, tr), w0[j]));
    }
    return out;
  },
};
