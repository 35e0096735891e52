/**
 * GTATask.execute of mergekit's generalized_task_arithmetic.py, op for op in torch's arithmetic
 * (`--numerics mergekit`): task vectors `x.to(base.dtype) - base`, sparsify, weights as a tensor
 * of the dtype, `deltas * weights`, sign consensus from `weighted.sum(dim=0) >= 0`, masked sums,
 * `divisor[divisor == 0] = 1` (or `|divisor| < 1e-8`), `/=` when normalize, `*= lambda`, `base +`.
 */
import { ParamError } from "../../proto/errors.js";
import { subjectOf, weightOf, numParam, requireBase } from "../merge/methods/generalized-task-arithmetic.js";
import { add, div, mul, mulScalar, roundTo, sub, sumAll } from "./torch-float.js";
import type { MergekitContext, MergekitMethod } from "./mergekit-context.js";
import { sumModels } from "./mergekit-context.js";
import { sparsifyMergekit, type MergekitSparsifier } from "./mergekit-sparsify.js";

interface GtaFlavour {
  consensus: boolean;
  sparsification: MergekitSparsifier | null;
  normalize: boolean;
  rescale: boolean;
}

/** Torch's sign(): −1, 0 or +1 (NaN gives 0 here; NaN inputs are refused before merging). */
const sign = (x: number): number => (x > 0 ? 1 : x < 0 ? -1 : 0);

export function gtaMergekit(method: string, f: GtaFlavour): MergekitMethod {
  return {
    castsToBase: true,
    elementwise: (_params, inputs) => !f.sparsification || inputs.every((i) => numParam(i.params, "density", 1) >= 1),
    merge(ctx: MergekitContext): Float32Array {
      requireBase(method, ctx);
      const { dt, profile: p } = ctx;
      const base = ctx.inputs[ctx.baseIndex].data;
      const n = base.length;
      const normalize = typeof ctx.params.normalize === "boolean" ? ctx.params.normalize : f.normalize;
      const rescale = typeof ctx.params.rescale === "boolean" ? ctx.params.rescale : f.rescale;
      const lambda = numParam(ctx.params, "lambda", 1);
      const deltas: Float32Array[] = [];
      const weights: number[] = [];
      for (let i = 0; i < ctx.inputs.length; i++) {
        if (i === ctx.baseIndex) continue;
        const input = ctx.inputs[i];
        const x = input.data;
        if (x.length !== n) throw new ParamError(`${subjectOf(method, ctx.tensorName, input.model)}: input has ${x.length} elements but the base has ${n}`);
        let d: Float32Array = new Float32Array(n);
        for (let j = 0; j < n; j++) d[j] = sub(dt, x[j], base[j]);
        const density = numParam(input.params, "density", 1);
        if (f.sparsification && density < 1) {
          d = sparsifyMergekit(d, {
            dt,
            profile: p,
            method: f.sparsification,
            density,
            gamma: numParam(input.params, "gamma", 0.01),
            epsilon: numParam(input.params, "epsilon", 0.15),
            rescale,
            shape: ctx.shape,
            uniform: ctx.random(i),
            subject: subjectOf(method, ctx.tensorName, input.model),
          });
        }
        deltas.push(d);
        // torch.tensor([weights], dtype=deltas.dtype): each weight rounded to the dtype
        weights.push(roundTo(dt, weightOf(method, ctx.tensorName, input)));
      }
      if (deltas.length === 0) return Float32Array.from(base);
      const m = deltas.length;
      // weighted_deltas = deltas * weights
      for (let t = 0; t < m; t++) {
        const d = deltas[t];
        const w = weights[t];
        for (let j = 0; j < n; j++) d[j] = mul(dt, d[j], w);
      }
      const mix = new Float32Array(n);
      let divisor: Float32Array | number;
      if (f.consensus) {
        const signWeight = sumModels(ctx, m, (r, j) => deltas[r][j], new Float32Array(n));
        // mask_i = sign(x_i) == majority_sign; weighted * mask and weights * mask, then sums
        const maskOf = (r: number, j: number) => sign(deltas[r][j]) === (signWeight[j] >= 0 ? 1 : -1);
        sumModels(ctx, m, (r, j) => mul(dt, deltas[r][j], maskOf(r, j) ? 1 : 0), mix);
        const dv = sumModels(ctx, m, (r, j) => mul(dt, weights[r], maskOf(r, j) ? 1 : 0), new Float32Array(n));
        for (let j = 0; j < n; j++) if (dv[j] === 0) dv[j] = 1;
        divisor = dv;
      } else {
        sumModels(ctx, m, (r, j) => deltas[r][j], mix);
        // weights.sum(dim=0) of an [m, 1, …] tensor: one contiguous row
        const dv = sumAll(dt, weights, p.lanes);
        divisor = Math.abs(dv) < roundTo(dt, 1e-8) ? 1 : dv;
      }
      if (normalize) {
        if (typeof divisor === "number") for (let j = 0; j < n; j++) mix[j] = div(dt, mix[j], divisor);
        else for (let j = 0; j < n; j++) mix[j] = div(dt, mix[j], divisor[j]);
      }
      if (lambda !== 1) for (let j = 0; j < n; j++) mix[j] = mulScalar(p, dt, mix[j], lambda);
      for (let j = 0; j < n; j++) mix[j] = add(dt, base[j], mix[j]);
      return mix;
    },
  };
}
