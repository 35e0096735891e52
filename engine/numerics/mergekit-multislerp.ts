/**
 * mergekit's `multislerp` (merge_methods/multislerp.py) in torch's arithmetic, for
 * `--numerics mergekit` in bf16/fp16: stack the points (minus the base), weights as a tensor of
 * the dtype (normalized by their sum), unit = x/(‖x‖ + eps), mean = Σ w·unit over models,
 * m = mean/‖mean‖, dots = (unit·m).sum(-1), tangent = Σ w·(unit − dots·m),
 * result = m·cos(‖tangent‖ + eps) + tangent·(sin(·)/(·)), times Σ‖x‖·w, plus the base.
 * Every op rounds to the dtype as torch does; cos and sin are torch's SLEEF routines.
 */
import { ParamError } from "../errors/index.js";
import type { MergekitContext, MergekitMethod } from "./mergekit-context.js";
import { torchUnary } from "./torch-unary.js";
import { add, addScalar, div, mul, norm, roundTo, sub, sumAll, sumDim0 } from "./torch-float.js";

const EPS = 1e-8;

export const multislerpMergekit: MergekitMethod = {
  elementwise: () => false,
  merge(ctx: MergekitContext): Float32Array {
    const { dt, profile: p } = ctx;
    const { sin, cos } = torchUnary(p, dt);
    const idx = ctx.inputs.map((_, i) => i).filter((i) => i !== ctx.baseIndex);
    if (idx.length === 0) throw new ParamError(`merge ${ctx.tensorName} with multislerp: no models besides the base; list at least one model`);
    if (idx.length === 1) return Float32Array.from(ctx.inputs[idx[0]].data);
    const base = ctx.baseIndex >= 0 ? ctx.inputs[ctx.baseIndex].data : undefined;
    const eps = typeof ctx.params.eps === "number" ? ctx.params.eps : EPS;
    const N = idx.length;
    const n = ctx.inputs[idx[0]].data.length;
    const xs = idx.map((i) => {
      const x = ctx.inputs[i].data;
      if (!base) return x;
      const d = new Float32Array(n);
      for (let j = 0; j < n; j++) d[j] = sub(dt, x[j], base[j]);
      return d;
    });
    let w = idx.map((i) => {
      const v = ctx.inputs[i].params.weight;
      if (typeof v !== "number")
        throw new ParamError(`merge ${ctx.tensorName} with multislerp: model '${ctx.inputs[i].model}' has no weight; add a weight for it`);
      return roundTo(dt, v);
    });
    if (ctx.params.normalize_weights !== false) {
      const total = sumAll(dt, w, p.lanes);
      w = w.map((v) => div(dt, v, total));
    }
    const norms = xs.map((x) => norm(p, dt, x));
    const units = xs.map((x, i) => {
      const d = addScalar(dt, norms[i], eps);
      const u = new Float32Array(n);
      for (let j = 0; j < n; j++) u[j] = div(dt, x[j], d);
      return u;
    });
    const mean = sumDim0(dt, N, n, (r, j) => mul(dt, units[r][j], w[r]), new Float32Array(n), p.lanes);
    const meanNorm = norm(p, dt, mean);
    if (meanNorm < roundTo(dt, eps)) {
      if (N !== 2)
        throw new ParamError(
          `merge ${ctx.tensorName} with multislerp: the weighted sum of the input tensors is zero (antipodal inputs with balancing weights); change the weights`,
        );
      const out = new Float32Array(n);
      for (let j = 0; j < n; j++) {
        const r = add(dt, mul(dt, xs[0][j], w[0]), mul(dt, xs[1][j], w[1]));
        out[j] = base ? add(dt, r, base[j]) : r;
      }
      return out;
    }
    for (let j = 0; j < n; j++) mean[j] = div(dt, mean[j], meanNorm);
    const prod = new Float32Array(n);
    const dots = units.map((u) => {
      for (let j = 0; j < n; j++) prod[j] = mul(dt, u[j], mean[j]);
      return sumAll(dt, prod, p.lanes);
    });
    const tangent = sumDim0(dt, N, n, (r, j) => mul(dt, sub(dt, units[r][j], mul(dt, dots[r], mean[j])), w[r]), new Float32Array(n), p.lanes);
    const tn = addScalar(dt, norm(p, dt, tangent), eps);
    const cosT = roundTo(dt, cos(tn));
    const ratio = div(dt, roundTo(dt, sin(tn)), tn);
    const avgNorm = sumAll(
      dt,
      norms.map((v, i) => mul(dt, v, w[i])),
      p.lanes,
    );
    const out = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      const r = mul(dt, add(dt, mul(dt, mean[j], cosT), mul(dt, tangent[j], ratio)), avgNorm);
      out[j] = base ? add(dt, r, base[j]) : r;
    }
    return out;
  },
};
