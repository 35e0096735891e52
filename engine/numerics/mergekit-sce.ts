/**
 * sce_merge of mergekit's merge_methods/sce.py in torch's arithmetic (`--numerics mergekit`):
 * task vectors t − base; erase mask `sign(tv) == majority` with majority from `tv.sum(dim=0) >= 0`;
 * weights mean(tv², over all but dim 0) (torch 2.x sums and divides a bf16/fp16 mean in fp32 and
 * rounds once), divided by their sum's `.item()` (or 1/N when that sum is below 1e-6);
 * (tv·w·mask).sum(0) / (w·mask).sum(0).clamp(min=1e-6); base + that.
 *
 * Models in config order. mergekit passes them in the order of a Python set of model references,
 * which changes with PYTHONHASHSEED; with three or more non-base models the fp32 sums over models
 * can then differ from run to run in mergekit itself, and parity holds for its config-order runs.
 * select_topk < 1 first masks the task vectors to the int(nonzero · select_topk) largest
 * variances over models (torch.var as float64 Welford, torch.topk's libstdc++ selection among
 * ties: torch-var.ts, torch-topk.ts).
 */
import { numParam, requireBase } from "../methods/generalized-task-arithmetic.js";
import type { MergekitContext, MergekitMethod } from "./mergekit-context.js";
import { sumModels } from "./mergekit-context.js";
import { add, div, divScalar, mul, roundTo, sub, sumAll, sumAllF32 } from "./torch-float.js";
import { topkLargestMask } from "./torch-topk.js";
import { varDim0 } from "./torch-var.js";

const sign = (x: number): number => (x > 0 ? 1 : x < 0 ? -1 : 0);

export const sceMergekit: MergekitMethod = {
  elementwise: () => false,
  merge(ctx: MergekitContext): Float32Array {
    requireBase("sce", ctx);
    const { dt, profile: p } = ctx;
    const base = ctx.inputs[ctx.baseIndex].data;
    const n = base.length;
    const tvs = ctx.inputs
      .filter((_, i) => i !== ctx.baseIndex)
      .map((input) => {
        const tv = new Float32Array(n);
        for (let j = 0; j < n; j++) tv[j] = sub(dt, input.data[j], base[j]);
        return tv;
      });
    const N = tvs.length;
    if (N === 0) return Float32Array.from(base);
    const topk = numParam(ctx.params, "select_topk", 1);
    if (topk < 1) {
      // sce_mask: keep the int(count_nonzero(var) · topk) largest variances over models (k in fp32, as torch computes it)
      let keep: Uint8Array;
      if (topk <= 0) keep = new Uint8Array(n);
      else {
        const v = varDim0(dt, N, n, (r, j) => tvs[r][j]);
        let nonzero = 0;
        for (let j = 0; j < n; j++) if (v[j] !== 0) nonzero++;
        keep = topkLargestMask(n, (j) => Math.abs(v[j]), Math.trunc(Math.fround(Math.fround(nonzero) * Math.fround(topk))));
      }
      for (const tv of tvs) for (let j = 0; j < n; j++) tv[j] = mul(dt, tv[j], keep[j]);
    }
    // sign consensus over the (unweighted) task vectors
    const majority = sumModels(ctx, N, (r, j) => tvs[r][j], new Float32Array(n));
    // sce_weight: mean over all but dim 0, then / weights.sum().item()
    const meanDt = p.scalarOpmath ? "F32" : dt;
    const weights = tvs.map((tv) => {
      const s = roundTo(
        meanDt,
        sumAllF32(meanDt, n, (j) => mul(dt, tv[j], tv[j]), p.lanes),
      );
      return roundTo(dt, divScalar(p, meanDt, s, n));
    });
    const weightSum = sumAll(dt, weights, p.lanes);
    const w = weights.map((x) => (Math.abs(weightSum) < 1e-6 ? divScalar(p, dt, 1, N) : divScalar(p, dt, x, weightSum)));
    const kept = (r: number, j: number): boolean => sign(tvs[r][j]) === (majority[j] >= 0 ? 1 : -1);
    const merged = sumModels(ctx, N, (r, j) => mul(dt, tvs[r][j], kept(r, j) ? w[r] : 0), new Float32Array(n));
    const denom = sumModels(ctx, N, (r, j) => (kept(r, j) ? w[r] : 0), new Float32Array(n));
    const lo = roundTo(dt, 1e-6);
    const out = new Float32Array(n);
    for (let j = 0; j < n; j++) out[j] = add(dt, base[j], div(dt, merged[j], Math.max(denom[j], lo)));
    return out;
  },
};
