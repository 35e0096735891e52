// Plan-time refusals of the mergekit modes for what they cannot reproduce: one line each, naming
// the tensor or method and what to use instead.
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkMergekitNumerics, checkMergekitTensor, mergekitResultDtype, torchBuildOf } from "./numerics-mode.js";

test("every mergekit method is planned in both modes; mergeloom's own methods are refused", () => {
  for (const m of ["karcher", "nuslerp", "multislerp", "arcee_fusion", "sce", "ties"])
    for (const t of ["2", "1.13"] as const) assert.doesNotThrow(() => checkMergekitNumerics(m, t));
  assert.throws(() => checkMergekitNumerics("consensus_ta", "1.13"), /mergeloom's own method, so --numerics mergekit-torch1.13 has nothing/);
});

test("arcee_fusion over 10⁶ elements (an unseeded sample) is refused per tensor; fp32 transcendental methods and row tails are not", () => {
  for (const m of ["multislerp", "nuslerp", "arcee_fusion", "karcher"]) assert.doesNotThrow(() => checkMergekitTensor(m, "F32", "w", [32, 32]));
  assert.doesNotThrow(() => checkMergekitTensor("karcher", "BF16", "w", [64, 65]), "torch 2.x's AMX bf16 dot over 4096 elements is replayed");
  assert.doesNotThrow(() => checkMergekitTensor("karcher", "BF16", "w", [64, 64]));
  assert.doesNotThrow(() => checkMergekitTensor("karcher", "BF16", "w", [64, 65], "1.13"));
  assert.doesNotThrow(() => checkMergekitTensor("multislerp", "BF16", "w", [32, 32]));
  assert.throws(() => checkMergekitTensor("arcee_fusion", "BF16", "emb", [1001, 1000]), /emb \(1001000 elements\).*randperm.*--numerics default$/);
  assert.doesNotThrow(() => checkMergekitTensor("arcee_fusion", "F16", "w", [10, 20]), "row tails take glibc's expf, replayed");
  assert.doesNotThrow(() => checkMergekitTensor("arcee_fusion", "BF16", "w", [625, 1600]));
  assert.equal(mergekitResultDtype("arcee_fusion"), "F32");
  assert.equal(mergekitResultDtype("linear"), undefined);
});

test("mergekit-torch1.13: karcher and fp32 transcendental methods are reproduced; fp16 where torch 1.13 has no kernel is refused", () => {
  assert.equal(torchBuildOf("mergekit"), "2");
  assert.equal(torchBuildOf("mergekit-torch1.13"), "1.13");
  assert.equal(torchBuildOf("default"), undefined);
  assert.doesNotThrow(() => checkMergekitNumerics("karcher", "1.13"));
  for (const m of ["multislerp", "nuslerp", "arcee_fusion", "karcher"]) {
    assert.doesNotThrow(() => checkMergekitTensor(m, "F32", "w", [32, 32], "1.13"));
    assert.doesNotThrow(() => checkMergekitTensor(m, "BF16", "w", [32, 30], "1.13"));
  }
  for (const [m, op] of [
    ["karcher", "dot"],
    ["model_stock", "clamp_min"],
    ["sce", "topk"],
    ["arcee_fusion", "softmax"],
  ])
    assert.throws(
      () => checkMergekitTensor(m, "F16", "w", [4, 4], "1.13"),
      new RegExp(`cannot run ${m} in float16 on torch 1.13 \\(torch 1.13 has no float16 ${op} on CPU\\).*tensor w; set dtype: bfloat16 or float32`),
    );
  assert.doesNotThrow(() => checkMergekitTensor("linear", "F16", "w", [4, 4], "1.13"));
});
