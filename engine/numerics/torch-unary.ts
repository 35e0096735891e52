/**
 * The elementwise transcendental ops of a tensor of dtype `dt` as a torch build computes them:
 * bf16/fp16 widen to float32 and call SLEEF (every build); float32 calls SLEEF too in a torch
 * built without MKL (Debian's 1.13), and MKL's VML (`vmsSin` …, high-accuracy mode, the AVX-512
 * kernels: mkl-vml-float32.ts) in the pip wheel. The result is rounded to `dt` by the caller.
 */
import { ParamError } from "../errors/index.js";
import { mklAcosf, mklCosf, mklLogf, mklSinf } from "./mkl-vml-float32.js";
import { torchAcosf, torchCosf, torchExpf, torchLogf, torchSinf } from "./sleef-float32.js";
import type { ComputeDType, TorchProfile } from "./torch-float.js";

export interface TorchUnary {
  sin(x: number): number;
  cos(x: number): number;
  acos(x: number): number;
  log(x: number): number;
  exp(x: number): number;
}

const SLEEF: TorchUnary = { sin: torchSinf, cos: torchCosf, acos: torchAcosf, log: torchLogf, exp: torchExpf };

const notReplayed = (): never => {
  throw new ParamError(
    "torch's pip wheel computes float32 exp with MKL's VML, which --numerics mergekit does not replay; use --numerics mergekit-torch1.13 or default",
  );
};
// exp of a float32 tensor is no step of a mergekit method (softmax calls SLEEF's directly)
const MKL: TorchUnary = { sin: mklSinf, cos: mklCosf, acos: mklAcosf, log: mklLogf, exp: notReplayed };

export function torchUnary(p: TorchProfile, dt: ComputeDType): TorchUnary {
  return dt === "F32" && p.f32Mkl ? MKL : SLEEF;
}
