/**
 * GTATask.execute of mergekit's generalized_task_arithmetic.py, op for op in torch's arithmetic
 * (`--numerics mergekit`): task vectors `x.to(base.dtype) - base`, sparsify, weights as a tensor
 * of the dtype, `deltas * weights`, sign consensus from `weighted.sum(dim=0) >= 0`, masked sums,
 * `divisor[divisor == 0] = 1` (or `|divisor| < 1e-8`), `/=` when normalize, `*= lambda`, `base +`.
 *
 * Memory: the task vectors overwrite the inputs' own buffers (the job's copies), so a tensor
 * costs its inputs plus the output (and the sort's 9 bytes per element when pruning by magnitude).
 */
import { ParamError } from "../errors/index.js";
import { subjectOf, weightOf, numParam, requireBase } from "../methods/generalized-task-arithmetic.js";
import { columnCascades, mulScalarValue, rounder, roundTo, sumAll, sumTerms } from "./torch-float.js";
import type { MergekitContext, MergekitMethod } from "./mergekit-context.js";
import { sparsifyMergekit, type MergekitSparsifier } from "./mergekit-sparsify.js";

interface GtaFlavour {
  consensus: boolean;
  sparsification: MergekitSparsifier | null;
  normalize: boolean;
  rescale: boolean;
}

/** Torch's sign(): −1, 0 or +1. */
const sign = (x: number): number => (x > 0 ? 1 : x < 0 ? -1 : 0);

export function gtaMergekit(method: string, f: GtaFlavour): MergekitMethod {
  return {
    castsToBase: true,
    elementwise: (_params, inputs) => !f.sparsification || inputs.every((i) => numParam(i.params, "density", 1) >= 1),
    merge(ctx: MergekitContext): Float32Array {
      requireBase(method, ctx);
      const { dt, profile: p } = ctx;
      const R = rounder(dt);
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
        let d = input.data;
        if (d.length !== n) throw new ParamError(`${subjectOf(method, ctx.tensorName, input.model)}: input has ${d.length} elements but the base has ${n}`);
        for (let j = 0; j < n; j++) d[j] = R(d[j] - base[j]);
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
        for (let j = 0; j < n; j++) d[j] = R(d[j] * w);
      }
      const out = new Float32Array(n);
      const terms = new Float64Array(m);
      const lam = lambda !== 1 ? mulScalarValue(p, dt, lambda) : 1;
      // `divisor` without consensus: weights.sum(dim=0), one contiguous row of m weights
      let flatDiv = sumAll(dt, weights, p.lanes);
      if (Math.abs(flatDiv) < roundTo(dt, 1e-8)) flatDiv = 1;
      for (let j = 0; j < n; j++) {
        const cascade = m > 4 && columnCascades(dt, ctx.start + j, ctx.numel, p.lanes);
        let mix: number;
        let div: number;
        if (f.consensus) {
          for (let r = 0; r < m; r++) terms[r] = deltas[r][j];
          const maj = R(sumTerms(terms, m, cascade)) >= 0 ? 1 : -1;
          // (weighted * mask).sum(0): a masked-out term is ±0 and leaves the fp32 sum unchanged
          for (let r = 0; r < m; r++) terms[r] = sign(deltas[r][j]) === maj ? deltas[r][j] : 0;
          mix = R(sumTerms(terms, m, cascade));
          for (let r = 0; r < m; r++) terms[r] = sign(deltas[r][j]) === maj ? weights[r] : 0;
          div = R(sumTerms(terms, m, cascade));
          if (div === 0) div = 1;
        } else {
          for (let r = 0; r < m; r++) terms[r] = deltas[r][j];
          mix = R(sumTerms(terms, m, cascade));
          div = flatDiv;
        }
        if (normalize) mix = R(mix / div);
        if (lambda !== 1) mix = R(mix * lam);
        out[j] = R(base[j] + mix);
      }
      return out;
    },
  };
}
