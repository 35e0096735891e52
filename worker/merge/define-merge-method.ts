/**
 * The one signature every merge method has. A method is a plain object: its name (as in
 * mergekit configs), the paper it follows, its parameters, whether it needs a base model, and a
 * pure `merge` function from fp32 inputs to an fp32 output.
 */
import type { ParamSpecs, ResolvedParams } from "./params.js";

export interface MergeInput {
  /** The model reference as written in the config (path), for error messages. */
  model: string;
  /** The input tensor in fp32, flattened row-major; `shape` in the context gives its layout. */
  data: Float32Array;
  /** Resolved per-model parameters (weight, density, ...). Unset ones without default are absent. */
  params: ResolvedParams;
}

export interface MergeContext {
  /** Output tensor name (for messages). */
  tensorName: string;
  /** Shape shared by every input and by the output. */
  shape: readonly number[];
  /** Inputs in mergekit's order: sources in config order, the base appended last if not listed. */
  inputs: readonly MergeInput[];
  /** Index of the base model in `inputs`, or -1 when there is none. */
  baseIndex: number;
  /** Resolved global parameters. */
  params: ResolvedParams;
  /**
   * A deterministic uniform [0,1) stream for input `i`, derived from (seed, tensor name, i):
   * the same numbers whichever process or thread computes the tensor, in whatever order.
   */
  random(i: number): () => number;
}

export type BaseRequirement = "none" | "optional" | "required";

export interface MergeMethod {
  name: string;
  /** Paper or documentation URL. */
  reference: string;
  params: ParamSpecs;
  modelParams: ParamSpecs;
  base: BaseRequirement;
  /**
   * True when output element i depends only on input elements i (given the resolved scalars),
   * so the driver may merge a large tensor in row chunks. A function when it depends on params.
   */
  elementwise?: boolean | ((params: ResolvedParams, inputs: readonly { params: ResolvedParams }[]) => boolean);
  /** Extra validation of the inputs for one tensor (counts, required params); throws ParamError. */
  check?(ctx: Omit<MergeContext, "random" | "inputs"> & { inputs: readonly Omit<MergeInput, "data">[] }): void;
  merge(ctx: MergeContext): Float32Array;
}

export function defineMergeMethod(m: MergeMethod): MergeMethod {
  return Object.freeze(m);
}
