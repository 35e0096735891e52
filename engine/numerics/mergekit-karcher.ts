/**
 * mergekit's `karcher` (merge_methods/karcher.py, `karcher_merge_tensors`) in torch's arithmetic.
 * Every tensor op rounds to the compute dtype as the torch build does; the norms are fp32
 * (`t.float()`), and so are ‖T‖ and its cos/sin, which then meet the dtype's tensors as 0-d
 * tensors. Reproduced for Debian's torch 1.13 (float32, bfloat16; it has no float16 `dot`, so
 * mergekit itself fails there) and for the torch 2.x wheel (float32 cos/sin, dot and acos from
 * MKL; bf16 dots over 4096 elements from oneDNN's AMX kernel; both in torch-dot.ts).
 */
import { ParamError } from "../errors/index.js";
import type { MergekitContext, MergekitMethod } from "./mergekit-context.js";
import { torchUnary } from "./torch-unary.js";
import { torchDot } from "./torch-dot.js";
import { add, div, divScalar, mul, mulScalar, normF32, roundTo, sub } from "./torch-float.js";

export const karcherMergekit: MergekitMethod = {
  elementwise: () => false,
  merge(ctx: MergekitContext): Float32Array {
    const { dt, profile: p } = ctx;
    const { sin, acos } = torchUnary(p, dt);
    const f32 = torchUnary(p, "F32"); // ‖T‖ is a float32 norm: its cos and sin are float32 ops
    const maxIter = typeof ctx.params.max_iter === "number" ? ctx.params.max_iter : 10;
    const tol = typeof ctx.params.tol === "number" ? ctx.params.tol : 1e-5;
    const xs = ctx.inputs.map((i) => i.data);
    if (xs.length === 0) throw new ParamError(`merge ${ctx.tensorName} with karcher: no input models`);
    if (xs.length === 1) return Float32Array.from(xs[0]);
    const n = xs[0].length;
    const alphas = xs.map(() => 1 / xs.length);

    // norms of t.float() (fp32, as Python floats) and units (t / n).to(dtype), each unit written
    // over its input (the inputs are this merge's own buffers and are not read again)
    const norms: number[] = [];
    const units: Float32Array[] = [];
    for (const t of xs) {
      const nv = normF32(p, t);
      norms.push(nv);
      if (nv === 0) t.fill(0);
      else for (let j = 0; j < n; j++) t[j] = divScalar(p, dt, t[j], nv);
      units.push(t);
    }
    const valid = norms.map((_, i) => i).filter((i) => norms[i] > tol);
    if (valid.length === 0) return new Float32Array(n);
    const alphaSum = valid.reduce((s, i) => s + alphas[i], 0);
    const a = valid.map((i) => alphas[i] / alphaSum);
    const vu = valid.map((i) => units[i]);

    // start: Σ a·u_i (u += a * ui, a Python float), normalized by its fp32 norm
    const u = new Float32Array(n);
    for (let k = 0; k < vu.length; k++) for (let j = 0; j < n; j++) u[j] = add(dt, u[j], mulScalar(p, dt, vu[k][j], a[k]));
    const normU = normF32(p, u);
    if (normU < tol) u.set(vu[0]);
    else for (let j = 0; j < n; j++) u[j] = divScalar(p, dt, u[j], normU);

    const T = new Float32Array(n);
    for (let iter = 0; iter < maxIter; iter++) {
      T.fill(0);
      for (let k = 0; k < vu.length; k++) {
        const ui = vu[k];
        const dot = Math.min(1, Math.max(-1, torchDot(p, dt, u, ui)));
        const theta = roundTo(dt, acos(dot));
        if (theta < tol) continue;
        const sinTheta = roundTo(dt, sin(theta));
        // a * (theta / sin_theta) * (ui - dot * u): 0-d tensors of the dtype, a a Python float
        const c = mulScalar(p, dt, div(dt, theta, sinTheta), a[k]);
        for (let j = 0; j < n; j++) T[j] = add(dt, T[j], mul(dt, c, sub(dt, ui[j], mul(dt, dot, u[j]))));
      }
      const normT = normF32(p, T);
      if (normT < tol) break;
      // cos/sin of the fp32 ‖T‖: fp32 0-d tensors as the first operand of `*`, which every torch
      // build casts to the tensor's dtype (torch 2.x keeps a 0-d second operand, T / ‖T‖, in fp32)
      const cosT = roundTo(dt, f32.cos(normT));
      const sinT = roundTo(dt, f32.sin(normT));
      for (let j = 0; j < n; j++) u[j] = add(dt, mul(dt, cosT, u[j]), mul(dt, sinT, divScalar(p, dt, T[j], normT)));
      const normNext = normF32(p, u);
      if (normNext > tol) for (let j = 0; j < n; j++) u[j] = divScalar(p, dt, u[j], normNext);
    }
    let s = 0;
    for (let i = 0; i < alphas.length; i++) s += alphas[i] * norms[i];
    for (let j = 0; j < n; j++) u[j] = mulScalar(p, dt, u[j], s);
    return u;
  },
};
