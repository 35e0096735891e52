/**
 * mergekit's generalized task arithmetic (merge_methods/generalized_task_arithmetic.py): one kernel,
 * configured by (sign consensus, sparsifier, normalize default, rescale default) into
 * task_arithmetic, ties, dare_linear, dare_ties, breadcrumbs, breadcrumbs_ties, della, della_linear.
 *
 * Per tensor: δ_i = X_i − B for every non-base input; sparsify each with its density; x_i = w_i·δ_i;
 * without consensus mix = Σx_i, div = Σw_i (forced to 1 when |div| < 1e-8); with "sum" consensus
 * the elected sign is + where Σx_i ≥ 0, mix and div sum only the x_i (w_i) whose sign matches
 * (div forced to 1 where 0); mix /= div when normalize; mix *= λ; result B + mix. All arithmetic is
 * fp32 with torch's order (products rounded, sums accumulated model by model).
 */
import { ParamError } from "../errors/index.js";
import { defineMergeMethod, dropAllButBase, type DroppedInput, type MergeContext, type MergeInput, type MergeMethod } from "./define-merge-method.js";
import { bool, num, type ParamSpecs, type ResolvedParams } from "./params.js";
import { checkDellaDensity, checkMagnitudeDensity, checkRandomDensity, outlierRange, sparsify, type SparsificationMethod } from "./sparsify.js";
import { gtaStream } from "./gta-stream.js";

export interface GtaVariant {
  name: string;
  reference: string;
  consensus: boolean;
  sparsification: SparsificationMethod | null;
  normalize: boolean;
  rescale: boolean;
}

export interface TaskVector {
  /** Index of the source in `ctx.inputs`. */
  index: number;
  input: MergeInput;
  /** X_i − B in fp32; owned, may be modified in place. */
  delta: Float32Array;
  weight: number;
}

type CheckCtx = Parameters<NonNullable<MergeMethod["check"]>>[0];

/** `merge <method> <tensor>`: the operation and subject of every message. */
export function subjectOf(method: string, tensorName: string, model?: string): string {
  return model === undefined ? `merge ${method} ${tensorName}` : `merge ${method} ${tensorName} (model ${model})`;
}

/** Refuses a tensor without a base, as every task-vector method needs one. */
export function requireBase(method: string, ctx: { tensorName: string; baseIndex: number; inputs: readonly unknown[] }): void {
  if (ctx.baseIndex < 0 || ctx.baseIndex >= ctx.inputs.length) {
    throw new ParamError(`${subjectOf(method, ctx.tensorName)}: ${method} works on task vectors and needs a base model; set base_model in the config`);
  }
}

/** The per-model weight as a number, or a ParamError naming the model. */
export function weightOf(method: string, tensorName: string, input: { model: string; params: ResolvedParams }): number {
  const w = input.params.weight;
  if (typeof w !== "number" || Number.isNaN(w)) {
    throw new ParamError(
      `${subjectOf(method, tensorName, input.model)}: per-model parameter 'weight' is required; set weight under this model's parameters or at the top level`,
    );
  }
  return w;
}

export function numParam(params: ResolvedParams, name: string, def: number): number {
  const v = params[name];
  return typeof v === "number" ? v : def;
}

/** The tensor's global settings: the variant's normalize and rescale unless params set them, and λ. */
export function gtaSettings(v: GtaVariant, params: ResolvedParams): { normalize: boolean; rescale: boolean; lambda: number } {
  return {
    normalize: params.normalize === undefined ? v.normalize : params.normalize === true,
    rescale: params.rescale === undefined ? v.rescale : params.rescale === true,
    lambda: numParam(params, "lambda", 1),
  };
}

/** δ_i = fp32(X_i − B) for every non-base input, in input order. */
export function taskVectors(method: string, ctx: MergeContext): TaskVector[] {
  requireBase(method, ctx);
  const base = ctx.inputs[ctx.baseIndex].data;
  const n = base.length;
  const out: TaskVector[] = [];
  for (let i = 0; i < ctx.inputs.length; i++) {
    if (i === ctx.baseIndex) continue;
    const input = ctx.inputs[i];
    const weight = weightOf(method, ctx.tensorName, input);
    const x = input.data;
    if (x.length !== n) {
      throw new ParamError(
        `${subjectOf(method, ctx.tensorName, input.model)}: input has ${x.length} elements but the base has ${n}; inputs must share the base's shape`,
      );
    }
    const delta = new Float32Array(n);
    for (let j = 0; j < n; j++) delta[j] = x[j] - base[j];
    out.push({ index: i, input, delta, weight });
  }
  return out;
}

/** Sparsifies every task vector in place with its own density (and gamma / epsilon). */
export function sparsifyTaskVectors(
  method: string,
  ctx: MergeContext,
  tvs: readonly TaskVector[],
  sparsification: SparsificationMethod,
  rescale: boolean,
): void {
  for (const tv of tvs) {
    const p = tv.input.params;
    const density = numParam(p, "density", 1);
    if (density >= 1) continue;
    sparsify(tv.delta, {
      method: sparsification,
      density,
      rescale,
      gamma: numParam(p, "gamma", 0.01),
      epsilon: numParam(p, "epsilon", 0.15),
      shape: ctx.shape,
      uniform: sparsification === "random" || sparsification === "della_magprune" ? ctx.random(tv.index) : undefined,
      subject: subjectOf(method, ctx.tensorName, tv.input.model),
    });
  }
}

/**
 * Combines (already sparsified) task vectors into the mixed delta, before λ: the weighted sum, or
 * with `consensus` the TIES sign-elected sum; divided by the (masked) weight sum when `normalize`.
 * With `consensus` it overwrites each delta with w_i·δ_i. `out` (at least n long) receives the
 * mix instead of a new array.
 */
export function mixTaskVectors(tvs: readonly TaskVector[], n: number, consensus: boolean, normalize: boolean, out?: Float32Array): Float32Array {
  const mix = out ? out.subarray(0, n).fill(0) : new Float32Array(n);
  const ws = tvs.map((tv) => Math.fround(tv.weight));
  if (!consensus) {
    for (let t = 0; t < tvs.length; t++) {
      const d = tvs[t].delta;
      const w = ws[t];
      for (let j = 0; j < n; j++) mix[j] += Math.fround(d[j] * w);
    }
    if (normalize) {
      let div = 0;
      for (const w of ws) div = Math.fround(div + w);
      if (Math.abs(div) < 1e-8) div = 1;
      if (div !== 1) for (let j = 0; j < n; j++) mix[j] /= div;
    }
    return mix;
  }
  // x_i = w_i·δ_i (written back into the delta buffers) and Σx_i accumulated model by model in
  // fp32; the elected sign is + where Σx_i ≥ 0 (an exact 0 goes to +; NaN goes to −, as torch's
  // `>=` does). mask_i = (sign(x_i) == elected sign); x_i == 0 has sign 0 and is never in the mask.
  // One fused pass per element, with selects instead of branches (random signs mispredict);
  // adding an unselected +0 to a sum that is never −0 leaves it unchanged, so this is the same
  // fp32 arithmetic as summing only the selected terms.
  const ds = tvs.map((tv) => tv.delta);
  const m = ds.length;
  const f32 = Math.fround;
  if (m === 2) {
    mixConsensus2(ds[0], ds[1], ws[0], ws[1], mix, n, normalize);
    return mix;
  }
  const xs = new Float64Array(m);
  for (let j = 0; j < n; j++) {
    let total = 0;
    for (let t = 0; t < m; t++) {
      const x = f32(ds[t][j] * ws[t]);
      ds[t][j] = x;
      xs[t] = x;
      total = f32(total + x);
    }
    const pos = total >= 0;
    let mx = 0;
    let dv = 0;
    for (let t = 0; t < m; t++) {
      const x = xs[t];
      const sel = pos ? x > 0 : x < 0;
      mx = f32(mx + (sel ? x : 0));
      dv = f32(dv + (sel ? ws[t] : 0));
    }
    mix[j] = normalize && dv !== 0 && dv !== 1 ? mx / dv : mx;
  }
  return mix;
}

const BLOCK = 4096;
const totF = new Float32Array(BLOCK);
const totU = new Uint32Array(totF.buffer);
const m0F = new Float32Array(BLOCK);
const m0U = new Uint32Array(m0F.buffer);
const m1F = new Float32Array(BLOCK);
const m1U = new Uint32Array(m1F.buffer);
const selI = new Int32Array(BLOCK);

/**
 * The two-model sign consensus, branch-free (signs of fine-tune deltas are coin flips, so any
 * branch on them mispredicts half the time). Per block: x_i and Σx in fp32; then, on the float
 * bits, each x_i is selected when nonzero, not NaN, and its sign bit equals the elected one (the
 * total's sign bit, NaN electing −); the selected values (+0 otherwise) and the selected weights
 * are summed in fp32 in model order. The result is exactly `mixTaskVectors`' per-model loop.
 */
function mixConsensus2(d0: Float32Array, d1: Float32Array, w0: number, w1: number, mix: Float32Array, n: number, normalize: boolean): void {
  const d0u = new Uint32Array(d0.buffer, d0.byteOffset, d0.length);
  const d1u = new Uint32Array(d1.buffer, d1.byteOffset, d1.length);
  for (let s = 0; s < n; s += BLOCK) {
    const len = Math.min(BLOCK, n - s);
    for (let k = 0; k < len; k++) {
      const x0 = Math.fround(d0[s + k] * w0);
      const x1 = Math.fround(d1[s + k] * w1);
      d0[s + k] = x0;
      d1[s + k] = x1;
      totF[k] = Math.fround(0 + x0) + x1; // never −0: (+0) + (−0) and exact cancellations give +0
    }
    for (let k = 0; k < len; k++) {
      const tb = totU[k];
      const neg = (tb >>> 31) | ((0x7f800000 - (tb & 0x7fffffff)) >>> 31);
      const b0 = d0u[s + k];
      const b1 = d1u[s + k];
      const g0 = b0 & 0x7fffffff;
      const g1 = b1 & 0x7fffffff;
      // nonzero & not NaN & same sign as elected
      const s0 = ((g0 + 0x7fffffff) >>> 31) & (((0x7f800000 - g0) >>> 31) ^ 1) & (1 ^ (b0 >>> 31) ^ neg);
      const s1 = ((g1 + 0x7fffffff) >>> 31) & (((0x7f800000 - g1) >>> 31) ^ 1) & (1 ^ (b1 >>> 31) ^ neg);
      m0U[k] = b0 & -s0;
      m1U[k] = b1 & -s1;
      selI[k] = s0 | (s1 << 1);
    }
    if (!normalize) {
      for (let k = 0; k < len; k++) mix[s + k] = m0F[k] + m1F[k];
      continue;
    }
    for (let k = 0; k < len; k++) {
      const sel = selI[k];
      const mx = Math.fround(m0F[k] + m1F[k]);
      let dv = Math.fround(Math.fround(0 + w0 * (sel & 1)) + w1 * (sel >>> 1)) + (((sel | (sel >>> 1)) & 1) ^ 1);
      if (dv === 0) dv = 1; // selected weights cancelling exactly: rare, and a division by 1 is exact
      mix[s + k] = mx / dv;
    }
  }
}

/** out = fp32(B + fp32(λ·mix)), written into `mix`. */
export function addScaled(base: Float32Array, mix: Float32Array, lambda: number): Float32Array {
  const l = Math.fround(lambda);
  const n = mix.length;
  if (l === 1) {
    for (let j = 0; j < n; j++) mix[j] += base[j];
  } else {
    for (let j = 0; j < n; j++) mix[j] = base[j] + Math.fround(mix[j] * l);
  }
  return mix;
}

function gtaParams(v: GtaVariant): ParamSpecs {
  return { normalize: bool(v.normalize), rescale: bool(v.rescale), lambda: num(1), int8_mask: bool(false) };
}

function gtaModelParams(v: GtaVariant): ParamSpecs {
  const specs: ParamSpecs = { weight: num(), density: num(1) };
  if (v.sparsification === "magnitude_outliers") specs.gamma = num(0.01);
  if (v.sparsification === "della_magprune") specs.epsilon = num(0.15);
  return specs;
}

/** Validation that needs no tensor data: base present, weights set, densities usable. */
function checkGta(v: GtaVariant, ctx: CheckCtx): void {
  requireBase(v.name, ctx);
  const numel = ctx.shape.reduce((a, b) => a * b, 1);
  ctx.inputs.forEach((input, i) => {
    if (i === ctx.baseIndex) return;
    weightOf(v.name, ctx.tensorName, input);
    const density = numParam(input.params, "density", 1);
    const subject = subjectOf(v.name, ctx.tensorName, input.model);
    if (v.sparsification === "magnitude") checkMagnitudeDensity(density, numel, subject);
    if (v.sparsification === "della_magprune") checkDellaDensity(density, numParam(input.params, "epsilon", 0.15), subject);
    // `density < 1`: a NaN density passes here and is refused when the tensor is merged
    if (v.sparsification === "random" && density < 1) checkRandomDensity(density, subject);
  });
}

/**
 * The task vectors this method keeps nothing of in a tensor, whatever the data: a lambda of 0
 * (every model), a random-drop density of 0, or breadcrumbs with n_top = int(gamma·numel) = 0, where mergekit's ascending
 * slice [n_bot:-n_top] is [n_bot:0], empty (a gamma of 0, or a tensor of fewer than 1/gamma
 * elements). Magnitude pruning's k = 0 is refused by `check` instead, as mergekit asserts it.
 */
function droppedGtaInputs(v: GtaVariant, ctx: CheckCtx): DroppedInput[] {
  const numel = ctx.shape.reduce((a, b) => a * b, 1);
  const dropped: DroppedInput[] = [];
  const lambda = numParam(ctx.params, "lambda", 1);
  if (lambda === 0) {
    return dropAllButBase(ctx, {
      param: "lambda",
      why: "lambda 0 scales the merged task vector to nothing, so the tensor is the base model's",
      fix: "set lambda above 0 (mergekit's default is 1)",
    });
  }
  ctx.inputs.forEach((input, i) => {
    const density = numParam(input.params, "density", 1);
    if (i === ctx.baseIndex || !(density < 1)) return;
    if ((v.sparsification === "random" || v.sparsification === "della_magprune") && density <= 0) {
      dropped.push({
        input: i,
        param: "density",
        why: `density ${density} keeps no element (${v.name} keeps each with probability density)`,
        fix: "use a density in (0, 1], or leave the model out",
      });
    }
    if (v.sparsification !== "magnitude_outliers") return;
    const gamma = numParam(input.params, "gamma", 0.01);
    const { start, stop } = outlierRange(density, gamma, numel);
    if (stop > start) return;
    dropped.push({
      input: i,
      param: "gamma",
      why: `gamma ${gamma} and density ${density} give n_top = int(gamma·numel) = 0, and mergekit's mask (the ascending |δ| order's slice [n_bot:-n_top]) is then an empty Python slice`,
      fix: "set that model's gamma so that gamma·numel ≥ 1 (the default 0.01 does for tensors of 100 elements or more), or its density to 1",
    });
  });
  return dropped;
}

/** Builds one GTA method from its row of mergekit's defaults table. */
export function defineGtaMethod(v: GtaVariant): MergeMethod {
  const sparsification = v.sparsification;
  return defineMergeMethod({
    name: v.name,
    reference: v.reference,
    params: gtaParams(v),
    modelParams: gtaModelParams(v),
    base: "required",
    // Chunkable by rows only when no sparsifier runs (each needs the whole tensor or its stream).
    elementwise: sparsification === null ? true : (_params, inputs) => inputs.every((i) => numParam(i.params, "density", 1) >= 1),
    check: (ctx) => checkGta(v, ctx),
    droppedInputs: (ctx) => droppedGtaInputs(v, ctx),
    streaming: (info) => gtaStream(v, info),
    merge(ctx) {
      const tvs = taskVectors(v.name, ctx);
      const base = ctx.inputs[ctx.baseIndex].data;
      if (tvs.length === 0) return Float32Array.from(base);
      const { normalize, rescale, lambda } = gtaSettings(v, ctx.params);
      if (sparsification !== null) sparsifyTaskVectors(v.name, ctx, tvs, sparsification, rescale);
      const mix = mixTaskVectors(tvs, base.length, v.consensus, normalize);
      return addScaled(base, mix, lambda);
    },
  });
}

const TASK_ARITHMETIC = "https://arxiv.org/abs/2212.04089";
const TIES = "https://arxiv.org/abs/2306.01708";
const DARE = "https://arxiv.org/abs/2311.03099";
const BREADCRUMBS = "https://arxiv.org/abs/2312.06795";
const DELLA = "https://arxiv.org/abs/2406.11617";

export const taskArithmetic = defineGtaMethod({
  name: "task_arithmetic",
  reference: TASK_ARITHMETIC,
  consensus: false,
  sparsification: null,
  normalize: false,
  rescale: false,
});
export const ties = defineGtaMethod({ name: "ties", reference: TIES, consensus: true, sparsification: "magnitude", normalize: true, rescale: false });
export const dareLinear = defineGtaMethod({
  name: "dare_linear",
  reference: DARE,
  consensus: false,
  sparsification: "random",
  normalize: false,
  rescale: true,
});
export const dareTies = defineGtaMethod({ name: "dare_ties", reference: DARE, consensus: true, sparsification: "random", normalize: false, rescale: true });
export const breadcrumbs = defineGtaMethod({
  name: "breadcrumbs",
  reference: BREADCRUMBS,
  consensus: false,
  sparsification: "magnitude_outliers",
  normalize: false,
  rescale: false,
});
export const breadcrumbsTies = defineGtaMethod({
  name: "breadcrumbs_ties",
  reference: BREADCRUMBS,
  consensus: true,
  sparsification: "magnitude_outliers",
  normalize: false,
  rescale: false,
});
export const della = defineGtaMethod({ name: "della", reference: DELLA, consensus: true, sparsification: "della_magprune", normalize: true, rescale: true });
export const dellaLinear = defineGtaMethod({
  name: "della_linear",
  reference: DELLA,
  consensus: false,
  sparsification: "della_magprune",
  normalize: false,
  rescale: true,
});

/** All eight, for the registry. */
export const generalizedTaskArithmeticMethods: readonly MergeMethod[] = [
  taskArithmetic,
  ties,
  dareLinear,
  dareTies,
  breadcrumbs,
  breadcrumbsTies,
  della,
  dellaLinear,
];
