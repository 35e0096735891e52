// Plan-time refusals of `--numerics mergekit` for what it does not replay: one line each, naming
// the tensor or method and `--numerics default`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkMergekitNumerics, checkMergekitTensor, mergekitResultDtype } from "./numerics-mode.js";

test("karcher and nuslerp over columns are refused; sce with select_topk < 1 is not", () => {
  assert.throws(() => checkMergekitNumerics("karcher"), /'karcher' bit for bit \(.*MKL.*\); use --numerics default$/);
  assert.throws(() => checkMergekitNumerics("nuslerp", { nuslerp_row_wise: true, nuslerp_flatten: false }), /over columns.*--numerics default$/);
  assert.doesNotThrow(() => checkMergekitNumerics("nuslerp", { nuslerp_row_wise: true }));
  assert.doesNotThrow(() => checkMergekitNumerics("sce", { select_topk: 0.3 }));
});

test("fp32 multislerp/nuslerp/arcee_fusion, sampled and glibc-tail arcee_fusion tensors are refused per tensor", () => {
  for (const m of ["multislerp", "nuslerp", "arcee_fusion"])
    assert.throws(() => checkMergekitTensor(m, "F32", "w", [32, 32]), /bfloat16 and float16 only: tensor w computes in float32.*--numerics default$/);
  assert.doesNotThrow(() => checkMergekitTensor("multislerp", "BF16", "w", [32, 32]));
  assert.throws(() => checkMergekitTensor("arcee_fusion", "BF16", "emb", [1001, 1000]), /emb \(1001000 elements\).*randperm.*--numerics default$/);
  assert.throws(() => checkMergekitTensor("arcee_fusion", "F16", "w", [10, 20]), /rows of 20 values.*glibc.*--numerics default$/);
  assert.doesNotThrow(() => checkMergekitTensor("arcee_fusion", "BF16", "w", [625, 1600]));
  assert.equal(mergekitResultDtype("arcee_fusion"), "F32");
  assert.equal(mergekitResultDtype("linear"), undefined);
});
