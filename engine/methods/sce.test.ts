import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ParamError } from "../errors/index.js";
import { sce } from "./sce.js";
import { assertClose, loadReference, makeContext, runMerge } from "./test-context.js";

describe("sce", () => {
  for (const c of loadReference("sce.json")) {
    test(`matches mergekit's sce_merge (numpy fp32 re-typing): ${c.name}`, () => {
      assertClose(runMerge(sce, c.ctx()), c.expected, 1e-6);
    });
  }

  test("sign election and mean-square weights (hand-computed)", () => {
    // base 0; τ1 = [2, -1], τ2 = [-1, -1]; mean squares 2.5 and 1 → s = [5/7, 2/7]
    // elem 0: sum 1 ≥ 0 → only τ1 (+) kept → 2; elem 1: sum −2 → both kept → −1
    const ctx = makeContext({
      inputs: [
        { model: "a", data: [2, -1] },
        { model: "b", data: [-1, -1] },
        { model: "base", data: [0, 0] },
      ],
      base: "base",
    });
    assertClose(runMerge(sce, ctx), [2, -1]);
  });

  test("select_topk < 1 keeps only the highest-variance entries in every task vector (hand-computed)", () => {
    // τ1 = [1, 4, 0, 2], τ2 = [1, 0, 0, -2]: variances [0, 4, 0, 4], nonzero 2, k = int(2·0.5) = 1 →
    // entry 1 (the first of the tied top entries) survives; mean squares after masking: 4 and 0 → s = [1, 0]
    // entry 1: sum 4 → +; τ1 kept → 4/1; others are zero → base
    const ctx = makeContext({
      inputs: [
        { model: "a", data: [2, 5, 1, 3] },
        { model: "b", data: [2, 1, 1, -1] },
        { model: "base", data: [1, 1, 1, 1] },
      ],
      base: "base",
      params: { select_topk: 0.5 },
    });
    assertClose(runMerge(sce, ctx), [1, 5, 1, 1]);
  });

  test("all-zero task vectors give uniform weights and leave the base", () => {
    const ctx = makeContext({
      inputs: [
        { model: "a", data: [1, 2] },
        { model: "b", data: [1, 2] },
        { model: "base", data: [1, 2] },
      ],
      base: "base",
    });
    assertClose(runMerge(sce, ctx), [1, 2]);
  });

  test("a missing base is refused with ParamError", () => {
    const ctx = makeContext({
      inputs: [
        { model: "a", data: [1] },
        { model: "b", data: [2] },
      ],
    });
    assert.throws(
      () => runMerge(sce, ctx),
      (e) => e instanceof ParamError && /base model is required/.test(e.message),
    );
  });

  test("declares select_topk (default 1) and int8_mask, and no per-model weight", () => {
    assert.deepEqual(sce.params.select_topk, { kind: "number", default: 1, required: false });
    assert.deepEqual(sce.params.int8_mask, { kind: "bool", default: false, required: false });
    assert.deepEqual(sce.modelParams, {});
  });
});

describe("sce droppedInputs: an empty top-k mask erases every task vector", () => {
  const ctx = (numel: number, topk: number) => ({
    tensorName: "t",
    shape: [numel],
    baseIndex: 1,
    params: { select_topk: topk },
    inputs: [
      { model: "a", params: {} },
      { model: "base", params: {} },
      { model: "c", params: {} },
    ],
  });
  test("select_topk 0, or int(numel·select_topk) = 0, drops every non-base input; otherwise none", () => {
    assert.deepEqual(
      sce.droppedInputs!(ctx(4096, 0)).map((d) => d.input),
      [0, 2],
    );
    assert.deepEqual(
      sce.droppedInputs!(ctx(64, 0.01)).map((d) => d.input),
      [0, 2],
    ); // int(0.64) = 0
    assert.deepEqual(sce.droppedInputs!(ctx(100, 0.01)), []);
    assert.deepEqual(sce.droppedInputs!(ctx(64, 1)), []);
    assert.equal(sce.droppedInputs!(ctx(64, 0))[0].param, "select_topk");
  });
  test("the merge agrees: with select_topk 0 the output is the base", () => {
    const out = runMerge(
      sce,
      makeContext({
        inputs: [
          { model: "a", data: [1, 2, 3, 4] },
          { model: "base", data: [0.5, 0, -1, 2] },
          { model: "c", data: [5, -6, 7, 8] },
        ],
        base: "base",
        params: { select_topk: 0 },
      }),
    );
    assert.deepEqual([...out], [0.5, 0, -1, 2]);
  });
});
