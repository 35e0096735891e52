/**
 * Test helpers for the task-vector methods: a MergeContext built from plain arrays with the
 * method's declared defaults filled in (as the driver resolves them), the base appended last (as
 * mergekit does when base_model is not listed), and optionally injected uniform streams.
 */
import assert from "node:assert/strict";
import { createRandom } from "../tensor/random.js";
import type { MergeContext, MergeMethod } from "./define-merge-method.js";
import type { ParamSpecs, ResolvedParams } from "./params.js";

export interface GtaTestModel {
  data: readonly number[];
  params?: ResolvedParams;
  model?: string;
}

export interface GtaTestOptions {
  base: readonly number[];
  models: readonly GtaTestModel[];
  shape?: readonly number[];
  params?: ResolvedParams;
  /** Where the base goes in `inputs`; default last. */
  baseIndex?: number;
  tensorName?: string;
  seed?: number;
  /** Replaces ctx.random: a stream per input index. */
  random?: (i: number) => () => number;
}

function withDefaults(specs: ParamSpecs, given: ResolvedParams): ResolvedParams {
  const out: ResolvedParams = {};
  for (const [name, spec] of Object.entries(specs)) if (spec.default !== undefined) out[name] = spec.default;
  return { ...out, ...given };
}

export function gtaContext(method: MergeMethod, o: GtaTestOptions): MergeContext {
  const tensorName = o.tensorName ?? "model.layers.0.mlp.up_proj.weight";
  const inputs = o.models.map((m, i) => ({
    model: m.model ?? `model-${i}`,
    data: Float32Array.from(m.data),
    params: withDefaults(method.modelParams, m.params ?? {}),
  }));
  const baseIndex = o.baseIndex ?? inputs.length;
  inputs.splice(baseIndex, 0, { model: "base", data: Float32Array.from(o.base), params: {} });
  const seed = o.seed ?? 1;
  return {
    tensorName,
    shape: o.shape ?? [o.base.length],
    inputs,
    baseIndex,
    params: withDefaults(method.params, o.params ?? {}),
    random: o.random ?? ((i) => createRandom(seed, `${tensorName}\u0000${i}`)),
  };
}

/** `check` then `merge`, as the planner and the driver do. */
export function runGta(method: MergeMethod, o: GtaTestOptions): Float32Array {
  const ctx = gtaContext(method, o);
  method.check?.(ctx);
  return method.merge(ctx);
}

/** A uniform stream that replays `values` and fails the test if more are drawn. */
export function fixedUniform(values: readonly number[]): () => number {
  let i = 0;
  return () => {
    if (i >= values.length) assert.fail(`fixed uniform stream exhausted after ${values.length} draws`);
    return values[i++];
  };
}

/** A stream that always returns `u`. */
export function constantUniform(u: number): () => number {
  return () => u;
}

/** |actual − expected| ≤ tol·max(1, |expected|) elementwise, naming the first bad index. */
export function assertAllClose(actual: ArrayLike<number>, expected: readonly number[], tol = 1e-6): void {
  assert.equal(actual.length, expected.length, "length");
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (!(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)))) {
      assert.fail(`element ${i}: got ${a}, expected ${e}\n  actual:   [${Array.from(actual).join(", ")}]\n  expected: [${expected.join(", ")}]`);
    }
  }
}
