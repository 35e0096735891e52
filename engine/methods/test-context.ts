/**
 * Builds a MergeContext for method unit tests: plain number arrays in, fp32 inputs out, with the
 * base located by model name and a deterministic random stream per input.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRandom } from "../tensor/random.js";
import type { MergeContext, MergeMethod } from "./define-merge-method.js";
import type { ResolvedParams } from "./params.js";

export interface TestInput {
  model: string;
  data: readonly number[];
  params?: ResolvedParams;
}

export function makeContext(opts: {
  inputs: readonly TestInput[];
  /** Model name of the base, if any; it must be one of `inputs`. */
  base?: string;
  shape?: readonly number[];
  params?: ResolvedParams;
  tensorName?: string;
  seed?: number;
}): MergeContext {
  const tensorName = opts.tensorName ?? "model.layers.0.mlp.up_proj.weight";
  const baseIndex = opts.base === undefined ? -1 : opts.inputs.findIndex((i) => i.model === opts.base);
  if (opts.base !== undefined && baseIndex < 0) throw new RangeError(`makeContext: base '${opts.base}' is not among the inputs`);
  return {
    tensorName,
    shape: opts.shape ?? [opts.inputs[0]?.data.length ?? 0],
    inputs: opts.inputs.map((i) => ({ model: i.model, data: Float32Array.from(i.data), params: i.params ?? {} })),
    baseIndex,
    params: opts.params ?? {},
    random: (i) => createRandom(opts.seed ?? 1, `${tensorName}\u0000${i}`),
  };
}

/** Runs a method's `check` hook (when it has one) and then `merge`, as the driver does. */
export function runMerge(method: MergeMethod, ctx: MergeContext): Float32Array {
  method.check?.(ctx);
  return method.merge(ctx);
}

/** Asserts |actual − expected| ≤ rel·max(1, |expected|) elementwise, with a message naming the index. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rel = 1e-6): void {
  assert.equal(actual.length, expected.length, "result length");
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e) ? !Number.isNaN(a) : !(Math.abs(a - e) <= rel * Math.max(1, Math.abs(e)))) {
      assert.fail(
        `element ${i}: got ${a}, expected ${e} (tolerance ${rel})\n  actual:   [${Array.from(actual).join(", ")}]\n  expected: [${Array.from(expected).join(", ")}]`,
      );
    }
  }
}

/** One case of a committed reference file (reference/<method>.json, written by reference/<method>.py). */
export interface ReferenceCase {
  name: string;
  inputs: TestInput[];
  base: string | null;
  shape: number[];
  params: ResolvedParams;
  expected: number[];
}

/** Loads reference/<file> (next to the tests) and turns each case into a MergeContext. */
export function loadReference(file: string): Array<ReferenceCase & { ctx: () => MergeContext }> {
  const { cases } = JSON.parse(readFileSync(new URL(`./reference/${file}`, import.meta.url), "utf8")) as { cases: ReferenceCase[] };
  return cases.map((c) => ({
    ...c,
    ctx: () => makeContext({ inputs: c.inputs, base: c.base ?? undefined, shape: c.shape, params: c.params }),
  }));
}
