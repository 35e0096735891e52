import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ParamError } from "../errors/index.js";
import { consensusTa, consensusTies, countTallMasks } from "./consensus.js";
import { assertAllClose, gtaContext, runGta } from "./gta-test-context.js";

// consensus_ta case, B = 10, weights 1, λ_t = .4; m_t = |τ_t| ≥ .4·|τ_MTL − τ_t|
//        τ1    τ2    τ3    τ_MTL  m1                 m2                  m3                 count
// e0:    1     1     1     3      1 ≥ .8 ✓           1 ≥ .8 ✓            1 ≥ .8 ✓           3
// e1:    .1    −.1   .2    .2     .1 ≥ .04 ✓         .1 ≥ .12 ✗          .2 ≥ 0 ✓           2
// e2:    .1    .1    5     5.2    .1 ≥ 2.04 ✗        .1 ≥ 2.04 ✗         5 ≥ .08 ✓          1
// e3:    2     .5    −.1   2.4    2 ≥ .16 ✓          .5 ≥ .76 ✗          .1 ≥ 1 ✗           1
const taus = [
  [1, 0.1, 0.1, 2],
  [1, -0.1, 0.1, 0.5],
  [1, 0.2, 5, -0.1],
];
const base = [10, 10, 10, 10];
const models = taus.map((t) => ({ data: t.map((v, j) => v + base[j]), params: { weight: 1 } }));

describe("consensus_ta", () => {
  test("keeps the merged vector where at least k tasks' TALL masks are on", () => {
    // k = 1: all; k = 2 (default): e0, e1; k = 3: e0 only
    assertAllClose(runGta(consensusTa, { base, models, params: { k: 1 } }), [13, 10.2, 15.2, 12.4], 1e-6);
    assertAllClose(runGta(consensusTa, { base, models }), [13, 10.2, 10, 10], 1e-6);
    assertAllClose(runGta(consensusTa, { base, models, params: { k: 3 } }), [13, 10, 10, 10], 1e-6);
  });

  test("scales the masked vector by lambda", () => {
    // k = 2: .5·[3 .2 0 0] + 10
    assertAllClose(runGta(consensusTa, { base, models, params: { lambda: 0.5 } }), [11.5, 10.1, 10, 10], 1e-6);
  });

  test("reduces to task arithmetic at k = 0", () => {
    assertAllClose(runGta(consensusTa, { base, models, params: { k: 0 } }), [13, 10.2, 15.2, 12.4], 1e-6);
  });

  test("uses tall_mask_lambda as the per-task threshold", () => {
    // τ = 1, 1, 1, λ_t = 1: 1 ≥ |3 − 1|·1 = 2 fails for every task → count 0 → base even at k = 1
    const ones = [1, 1, 1].map(() => ({ data: [11], params: { weight: 1 } }));
    assertAllClose(runGta(consensusTa, { base: [10], models: ones, params: { k: 1, tall_mask_lambda: 1 } }), [10]);
    // λ_t = .4: 1 ≥ .8 holds for all → 13
    assertAllClose(runGta(consensusTa, { base: [10], models: ones, params: { k: 1 } }), [13]);
  });

  test("builds τ_MTL from the weights but the masks from the unweighted task vectors", () => {
    // τ = 1, 1, 1 with w = 2, 1, 1: τ_MTL = 4; m1: 1 ≥ .4·3 = 1.2 ✗, m2 ✗, m3 ✗ → base; k = 0 → 10 + 4
    const ms = [2, 1, 1].map((w) => ({ data: [11], params: { weight: w } }));
    assertAllClose(runGta(consensusTa, { base: [10], models: ms, params: { k: 1 } }), [10]);
    assertAllClose(runGta(consensusTa, { base: [10], models: ms, params: { k: 0 } }), [14]);
  });

  test("needs a base model", () => {
    const ctx = gtaContext(consensusTa, { base, models });
    assert.throws(() => consensusTa.merge({ ...ctx, baseIndex: -1 }), ParamError);
  });

  test("is elementwise", () => {
    assert.equal(consensusTa.elementwise, true);
  });
});

describe("consensus_ties", () => {
  // B = 0, weights 1, density 1; τ_MTL = TIES disjoint mean
  //        τ1   τ2   τ3   Σ→sign  τ_MTL        m1            m2              m3              count
  // e0:    .5   1    −1   .5 +    (.5+1)/2=.75  .5 ≥ .1 ✓     1 ≥ .1 ✓        1 ≥ .7 ✓        3
  // e1:    4    −1   −1   2 +     4            4 ≥ 0 ✓       1 ≥ 2 ✗         1 ≥ 2 ✗         1
  // e2:    −2   −3   1    −4 −    −2.5         2 ≥ .2 ✓      3 ≥ .2 ✓        1 ≥ 1.4 ✗       2
  // e3:    0    0    0    0 +     0            0 ≥ 0 ✓ …                                     3
  const tiesTaus = [
    [0.5, 4, -2, 0],
    [1, -1, -3, 0],
    [-1, -1, 1, 0],
  ];
  const zero = [0, 0, 0, 0];
  const dense = tiesTaus.map((t) => ({ data: t, params: { weight: 1 } }));

  test("masks the TIES-merged vector by TALL-mask consensus", () => {
    assertAllClose(runGta(consensusTies, { base: zero, models: dense, params: { k: 1 } }), [0.75, 4, -2.5, 0]);
    assertAllClose(runGta(consensusTies, { base: zero, models: dense }), [0.75, 0, -2.5, 0]);
    assertAllClose(runGta(consensusTies, { base: zero, models: dense, params: { k: 3 } }), [0.75, 0, 0, 0]);
  });

  test("prunes by density before the TIES merge but masks with the dense task vectors", () => {
    // density .5 (top 2 each): τ1 → [0 4 −2 0]; τ2 → [1 0 −3 0] (tie at 1: lower index); τ3 → [−1 −1 0 0]
    // e0: x = [0 1 −1], Σ 0 → +, τ_MTL = 1; e1: [4 0 −1] → 4; e2: [−2 −3 0] → −2.5
    // masks (dense τ): e0 .5 ≥ .2 ✓, 1 ≥ 0 ✓, 1 ≥ .8 ✓ → 3; e1 → 1; e2 → 2 (as above)
    const pruned = tiesTaus.map((t) => ({ data: t, params: { weight: 1, density: 0.5 } }));
    assertAllClose(runGta(consensusTies, { base: zero, models: pruned }), [1, 0, -2.5, 0]);
  });

  test("is elementwise only without pruning", () => {
    const e = consensusTies.elementwise;
    assert.equal(typeof e, "function");
    if (typeof e !== "function") return;
    assert.equal(e({}, [{ params: { weight: 1, density: 1 } }]), true);
    assert.equal(e({}, [{ params: { weight: 1, density: 0.5 } }]), false);
  });
});

describe("countTallMasks", () => {
  test("counts an exact equality as on (≥)", () => {
    // τ = [2], τ_MTL = [3], λ = 2: |2| ≥ |1|·2 holds with equality
    assert.deepEqual(Array.from(countTallMasks([Float32Array.from([2])], Float32Array.from([3]), 2)), [1]);
    assert.deepEqual(Array.from(countTallMasks([Float32Array.from([2])], Float32Array.from([3]), 2.5)), [0]);
  });
});
