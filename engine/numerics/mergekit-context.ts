/**
 * What a method sees under `--numerics mergekit`: the inputs already cast to the compute dtype
 * (as mergekit's loader does with `dtype:`), the dtype, the torch build whose rounding is
 * reproduced, and where the chunk sits in the whole tensor (torch's summation order over the
 * stacked models depends on the flat column index, so chunked merges stay exact).
 */
import type { MergeContext } from "../methods/define-merge-method.js";
import type { ComputeDType, TorchProfile } from "./torch-float.js";
import { sumDim0 } from "./torch-float.js";

export interface MergekitContext extends MergeContext {
  dt: ComputeDType;
  profile: TorchProfile;
  /** Flat index of the chunk's first element in the whole tensor, and the whole tensor's numel. */
  start: number;
  numel: number;
}

/** A method's mergekit arithmetic. */
export interface MergekitMethod {
  /** The merged values of the chunk (each representable in ctx.dt). */
  merge(ctx: MergekitContext): Float32Array;
  /** True when row chunks may be merged independently (as in mergekit, the result is elementwise). */
  elementwise(params: MergeContext["params"], inputs: readonly { params: MergeContext["params"] }[]): boolean;
  /** Without `dtype:`, mergekit casts every model to the base's dtype (the task-vector methods). */
  castsToBase?: boolean;
  /** mergekit's result is fp32 whatever the compute dtype (so written as fp32 unless `out_dtype` is set). */
  resultF32?: boolean;
}

/**
 * `torch.stack(rows).sum(dim=0)` for the chunk: row r's value at chunk position j is `get(r, j)`.
 * The column order is torch's for the whole tensor (global index start + j of numel columns).
 */
export function sumModels(ctx: MergekitContext, nRows: number, get: (r: number, j: number) => number, out: Float32Array): Float32Array {
  return sumDim0(ctx.dt, nRows, out.length, get, out, ctx.profile.lanes, ctx.start, ctx.numel);
}
