/**
 * mergekit's sparsify.py in torch's arithmetic (`--numerics mergekit`). The magnitude methods
 * keep the elements torch's `argsort`/`sort` put in the kept positions, ties included
 * (torch-sort.ts); the random ones draw from mergeloom's counter-based stream instead of torch's
 * generator (same distribution, different draws).
 */
import { ParamError } from "../errors/index.js";
import { sortedRangeMaskOf, torchArgsort } from "./torch-sort.js";
import { mul, roundTo, sumAll, div, sub, type ComputeDType, type TorchProfile } from "./torch-float.js";

export type MergekitSparsifier = "magnitude" | "magnitude_outliers" | "random" | "della_magprune";

export interface SparsifyOptions {
  dt: ComputeDType;
  profile: TorchProfile;
  method: MergekitSparsifier;
  density: number;
  gamma: number;
  epsilon: number;
  /** RescaleNorm.l1 when the method's `rescale` is true. */
  rescale: boolean;
  shape: readonly number[];
  uniform?: () => number;
  subject: string;
}

/** Python's int() of a float product: truncation toward zero. */
const pyInt = (x: number): number => Math.trunc(x);

/** `tensor * mask` (mask of 0/1 in the dtype) into a new array: x·0 keeps the sign of x, as torch's product does. */
function applyMask(dt: ComputeDType, t: Float32Array, mask: Uint8Array): Float32Array {
  const out = new Float32Array(t.length);
  for (let j = 0; j < t.length; j++) out[j] = mask[j] ? t[j] : t[j] * 0;
  return out;
}

/** rescaled_masked_tensor(tensor, mask, l1 or None): ‖t‖₁/‖t⊙m‖₁ as 0-dim tensors of the dtype. */
function rescaledMasked(dt: ComputeDType, p: TorchProfile, t: Float32Array, mask: Uint8Array, rescale: boolean): Float32Array {
  const masked = applyMask(dt, t, mask);
  if (!rescale) return masked;
  const abs = (a: Float32Array) => {
    const o = new Float32Array(a.length);
    for (let j = 0; j < a.length; j++) o[j] = Math.abs(a[j]);
    return o;
  };
  const before = sumAll(dt, abs(t), p.lanes);
  const after = sumAll(dt, abs(masked), p.lanes);
  const eps = roundTo(dt, 1e-7); // a Python float compared with a tensor is cast to its dtype
  if (before < eps || after < eps) return masked;
  const scale = div(dt, before, after);
  for (let j = 0; j < masked.length; j++) masked[j] = mul(dt, masked[j], scale);
  return masked;
}

/** sparsify(tensor, density, method, gamma, epsilon, rescale_norm) → a new array (or `t` when untouched). */
export function sparsifyMergekit(t: Float32Array, o: SparsifyOptions): Float32Array {
  const { dt, profile: p, density } = o;
  if (density >= 1) return t;
  const n = t.length;
  const magnitude = (j: number) => Math.abs(t[j]);
  switch (o.method) {
    case "magnitude": {
      const k = pyInt(density * n);
      if (!(k > 0)) throw new ParamError(`${o.subject}: density ${density} keeps int(${density}·${n}) = ${k} elements; mergekit asserts k > 0`);
      return rescaledMasked(dt, p, t, sortedRangeMaskOf(n, magnitude, true, 0, k), o.rescale);
    }
    case "magnitude_outliers": {
      const target = pyInt(density * n);
      let nTop = pyInt(o.gamma * n);
      let nBot = n - target - nTop;
      if (nBot < 0) {
        nTop += nBot;
        nBot = 0;
      }
      // indices[n_bot:-n_top] of an ascending sort; with n_top == 0 that Python slice is empty.
      const mask = nTop === 0 ? new Uint8Array(n) : sortedRangeMaskOf(n, magnitude, false, nBot, n - nTop);
      return rescaledMasked(dt, p, t, mask, o.rescale);
    }
    case "random": {
      // bernoulli(full_like(t, density)) in bf16 (the density rounded to bf16) or in fp32 for fp16/fp32.
      const work: ComputeDType = dt === "BF16" ? "BF16" : "F32";
      const pr = roundTo(work, density);
      const u = o.uniform!;
      const mask = new Uint8Array(n);
      for (let j = 0; j < n; j++) mask[j] = u() < pr ? 1 : 0;
      const r = rescaledMasked(work, p, t, mask, o.rescale);
      return dt === work ? r : roundArrayCopy(dt, r);
    }
    case "della_magprune":
      return dellaMagprune(t, o);
  }
}

function roundArrayCopy(dt: ComputeDType, a: Float32Array): Float32Array {
  for (let j = 0; j < a.length; j++) a[j] = roundTo(dt, a[j]);
  return a;
}

/** della_magprune: per row (a 1-D tensor is one row) rank |δ|, keep with p − ε + 2ε·rank_norm. */
function dellaMagprune(t: Float32Array, o: SparsifyOptions): Float32Array {
  const { dt, profile: p, density, epsilon } = o;
  if (density <= 0) return new Float32Array(t.length);
  if (density + epsilon >= 1 || density - epsilon <= 0) {
    throw new ParamError(`${o.subject}: Epsilon must be chosen such that density +/- epsilon is in (0, 1)`);
  }
  const work: ComputeDType = dt === "BF16" ? "BF16" : "F32";
  const cols = o.shape.length < 2 ? t.length : t.length / o.shape[0];
  const rows = t.length / Math.max(1, cols);
  const u = o.uniform!;
  const mask = new Uint8Array(t.length);
  const lo = density - epsilon;
  for (let r = 0; r < rows; r++) {
    const row = t.subarray(r * cols, (r + 1) * cols);
    const mag = new Float32Array(cols);
    for (let j = 0; j < cols; j++) mag[j] = Math.abs(row[j]);
    // ranks = argsort(argsort(|δ|)) + 1, as the work dtype; min rank 1, max rank cols (rounded)
    const order = torchArgsort(mag, false);
    const ranks = new Float32Array(cols);
    for (let q = 0; q < cols; q++) ranks[order[q]] = roundTo(work, q + 1);
    const minR = roundTo(work, 1);
    const maxR = roundTo(work, cols);
    const span = sub(work, maxR, minR);
    for (let j = 0; j < cols; j++) {
      const rn = Math.min(1, Math.max(0, div(work, sub(work, ranks[j], minR), span)));
      // (density - epsilon) + rank_norm * 2 * epsilon: Python scalars in `*` and `+`
      const prob = roundTo(
        work,
        roundTo(work, rn * (p.scalarOpmath ? Math.fround(2) : 2)) * (p.scalarOpmath ? Math.fround(epsilon) : roundTo(work, epsilon)) + roundTo(work, lo),
      );
      mask[r * cols + j] = u() < prob ? 1 : 0;
    }
  }
  const res = rescaledMasked(work, p, t, mask, o.rescale);
  return dt === work ? res : roundArrayCopy(dt, res);
}
