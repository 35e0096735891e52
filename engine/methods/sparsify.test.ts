import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ParamError } from "../errors/index.js";
import { createRandom } from "../tensor/random.js";
import { assertAllClose, constantUniform, fixedUniform } from "./gta-test-context.js";
import { rescaleL1, sparsify, sparsifyDellaMagprune, sparsifyMagnitude, sparsifyMagnitudeOutliers, sparsifyRandom } from "./sparsify.js";

const f32 = (xs: readonly number[]) => Float32Array.from(xs);
const r32 = (x: number) => Math.fround(x);

describe("magnitude", () => {
  test("keeps the int(p·n) largest |δ| of the whole tensor", () => {
    // |δ| = .5 3 2 1 .1 4 2 .25; k = int(0.5·8) = 4 → 4 (i5), 3 (i1), 2 (i2), 2 (i6)
    const d = sparsifyMagnitude(f32([0.5, -3, 2, -1, 0.1, 4, -2, 0.25]), 0.5, false);
    assertAllClose(d, [0, -3, 2, 0, 0, 4, -2, 0]);
  });

  test("ranks a 2-D tensor as one flattened vector, not per row", () => {
    // rows [9 8] and [1 2], k = int(0.5·4) = 2 → both kept entries are in row 0
    const d = sparsify(f32([9, 8, 1, 2]), { method: "magnitude", density: 0.5, rescale: false, shape: [2, 2] });
    assertAllClose(d, [9, 8, 0, 0]);
  });

  test("breaks ties at the cut by keeping the lower index", () => {
    // |δ| = 1 1 1 1 .5 1, k = int(0.5·6) = 3; five entries tie at 1 → indices 0, 1, 2 win
    const d = sparsifyMagnitude(f32([1, -1, 1, 1, 0.5, -1]), 0.5, false);
    assertAllClose(d, [1, -1, 1, 0, 0, 0]);
  });

  test("refuses a density that keeps nothing, as mergekit's assertion does", () => {
    assert.throws(
      () => sparsifyMagnitude(f32([1, 2, 3, 4, 5, 6, 7, 8]), 0.1, false),
      (e: unknown) => e instanceof ParamError && /int\(0\.1·8\) = 0/.test(e.message),
    );
    assert.throws(() => sparsifyMagnitude(f32([1, 2]), 0, false), ParamError);
  });

  test("returns the task vector untouched at density ≥ 1, without rescale", () => {
    const d = f32([1, -2, 3]);
    assert.equal(sparsifyMagnitude(d, 1, true), d);
    assertAllClose(sparsifyMagnitude(d, 1.5, true), [1, -2, 3]);
  });

  test("rescales survivors by ‖δ‖₁/‖δ⊙m‖₁ when asked", () => {
    // keep 3, −4; L1 before = 1+2+3+4 = 10, after = 7 → ×10/7
    const d = sparsifyMagnitude(f32([1, -2, 3, -4]), 0.5, true);
    const s = r32(10 / 7);
    assertAllClose(d, [0, 0, r32(3 * s), r32(-4 * s)]);
  });

  test("keeps exactly the set a stable descending sort keeps, on data with many ties", () => {
    const rnd = createRandom(7, "magnitude-ties");
    const n = 5000;
    const xs = Array.from({ length: n }, () => Math.round((rnd() - 0.5) * 40) / 8); // ~40 distinct magnitudes
    const k = Math.trunc(0.37 * n);
    const order = xs.map((_, i) => i).sort((a, b) => Math.abs(xs[b]) - Math.abs(xs[a]) || a - b);
    const expected = new Array<number>(n).fill(0);
    for (const i of order.slice(0, k)) expected[i] = xs[i];
    assertAllClose(sparsifyMagnitude(f32(xs), 0.37, false), expected, 0);
  });
});

describe("magnitude_outliers (breadcrumbs)", () => {
  const xs = [0.1, -0.9, 0.5, 0.3, -0.7, 0.2, 1.0, -0.4, 0.8, 0.6];

  test("drops the n_top largest and the n_bot smallest", () => {
    // n = 10, target = 5, n_top = int(0.1·10) = 1, n_bot = 10 − 5 − 1 = 4
    // ascending |δ|: .1 .2 .3 .4 | .5 .6 .7 .8 .9 | 1.0 → keep indices 2, 9, 4, 8, 1
    const d = sparsifyMagnitudeOutliers(f32(xs), 0.5, 0.1, false);
    assertAllClose(d, [0, -0.9, 0.5, 0, -0.7, 0, 0, 0, 0.8, 0.6]);
  });

  test("moves a negative n_bot into n_top", () => {
    // target = 9, n_top = 2, n_bot = −1 → n_top = 1, n_bot = 0: only the largest (1.0 at i6) goes
    const d = sparsifyMagnitudeOutliers(f32(xs), 0.9, 0.2, false);
    assertAllClose(
      d,
      xs.map((x, i) => (i === 6 ? 0 : x)),
    );
  });

  test("drops the whole task vector when n_top is 0 (mergekit's [n_bot:-0] quirk)", () => {
    // 64 entries, γ = 0.01 → n_top = int(0.64) = 0 → sorted[32:-0] is empty
    const d = sparsifyMagnitudeOutliers(f32(Array.from({ length: 64 }, (_, i) => i + 1)), 0.5, 0.01, true);
    assert.deepEqual(Array.from(d), new Array(64).fill(0));
  });

  test("breaks ties in stable ascending order at both cuts", () => {
    // all equal: target 4, n_top = 1, n_bot = 3 → positions 3..6 = indices 3..6
    assertAllClose(sparsifyMagnitudeOutliers(f32([1, 1, 1, 1, 1, 1, 1, 1]), 0.5, 0.125, false), [0, 0, 0, 1, 1, 1, 1, 0]);
    // 1s at i0 i2 i4 i6 (positions 0–3), 2s at i1 i3 i5 i7 (positions 4–7); keep [2, 6) → i4 i6 i1 i3
    assertAllClose(sparsifyMagnitudeOutliers(f32([1, 2, 1, 2, 1, 2, 1, 2]), 0.5, 0.25, false), [0, 2, 0, 2, 1, 0, 1, 0]);
  });

  test("matches a stable-sort reference on data with many ties", () => {
    const rnd = createRandom(11, "breadcrumbs-ties");
    const n = 3000;
    const vals = Array.from({ length: n }, () => Math.round((rnd() - 0.5) * 30) / 4);
    const target = Math.trunc(0.4 * n);
    const nTop = Math.trunc(0.05 * n);
    const nBot = n - target - nTop;
    const asc = vals.map((_, i) => i).sort((a, b) => Math.abs(vals[a]) - Math.abs(vals[b]) || a - b);
    const expected = new Array<number>(n).fill(0);
    for (const i of asc.slice(nBot, n - nTop)) expected[i] = vals[i];
    assertAllClose(sparsifyMagnitudeOutliers(f32(vals), 0.4, 0.05, false), expected, 0);
  });

  test("ignores gamma at density ≥ 1", () => {
    assertAllClose(sparsifyMagnitudeOutliers(f32([1, 2, 3]), 1, 0.5, true), [1, 2, 3]);
  });
});

describe("random (DARE)", () => {
  test("keeps an entry where the uniform draw is below the density", () => {
    // u = .1 .6 .3 .9, p = .5 → keep i0 i2; a draw equal to p is dropped (u < p)
    assertAllClose(sparsifyRandom(f32([1, 2, 3, 4]), 0.5, fixedUniform([0.1, 0.6, 0.3, 0.9]), false), [1, 0, 3, 0]);
    assertAllClose(sparsifyRandom(f32([1, 2]), 0.5, fixedUniform([0.5, 0.49]), false), [0, 2]);
  });

  test("rescales by the L1 ratio, not by 1/p", () => {
    // kept 1 and 3: L1 10 → 4, ratio 2.5 (1/p would be 2)
    assertAllClose(sparsifyRandom(f32([1, 2, 3, 4]), 0.5, fixedUniform([0.1, 0.6, 0.3, 0.9]), true), [2.5, 0, 7.5, 0]);
  });

  test("drops everything at density 0 and refuses a negative density", () => {
    assertAllClose(sparsifyRandom(f32([1, 2, 3]), 0, constantUniform(0), true), [0, 0, 0]);
    assert.throws(() => sparsifyRandom(f32([1]), -0.1, constantUniform(0), false), ParamError);
  });

  test("keeps about p of the entries and is reproducible from the stream", () => {
    const n = 100_000;
    const a = sparsifyRandom(new Float32Array(n).fill(1), 0.3, createRandom(3, "t\u00000"), false);
    const b = sparsifyRandom(new Float32Array(n).fill(1), 0.3, createRandom(3, "t\u00000"), false);
    const kept = a.reduce((s, v) => s + v, 0) / n;
    assert.ok(Math.abs(kept - 0.3) < 0.01, `kept fraction ${kept}`);
    assert.deepEqual(a, b);
  });
});

describe("della_magprune", () => {
  // rows: [.4 −.1 .3 −.2] and [−5 8 6 7]; p = .5, ε = .3 → prob = .2 + .6·rank/3
  const rows = [0.4, -0.1, 0.3, -0.2, -5, 8, 6, 7];

  test("ranks |δ| within each row", () => {
    // row 0 ranks: i1 0, i3 1, i2 2, i0 3 → probs .8 .2 .6 .4; row 1: i0 0, i2 1, i3 2, i1 3 → .2 .8 .4 .6
    // u = .5 everywhere keeps probs > .5
    const d = sparsifyDellaMagprune(f32(rows), [2, 4], 0.5, 0.3, constantUniform(0.5), false);
    assertAllClose(d, [0.4, 0, 0.3, 0, 0, 8, 0, 7]);
  });

  test("ranks a 1-D tensor as one row", () => {
    // ranks over all 8: |δ| .1 .2 .3 .4 5 6 7 8 → probs .2 + .6·r/7 = .2 .286 .371 .457 .543 .629 .714 .8
    const d = sparsifyDellaMagprune(f32(rows), [8], 0.5, 0.3, constantUniform(0.5), false);
    assertAllClose(d, [0, 0, 0, 0, -5, 8, 6, 7]);
  });

  test("uses the draws in flat order against each entry's own probability", () => {
    // 1-D [3 1 2]: ranks 2 0 1 → probs .8 .2 .5 (p = .5, ε = .3); u = .7 .1 .6 → keep i0 i1, drop i2
    const d = sparsifyDellaMagprune(f32([3, 1, 2]), [3], 0.5, 0.3, fixedUniform([0.7, 0.1, 0.6]), false);
    assertAllClose(d, [3, 1, 0]);
  });

  test("gives equal magnitudes increasing ranks in index order", () => {
    // [1 1 1 1]: ranks 0..3 → probs .2 .4 .6 .8, u = .5 → keep i2 i3
    assertAllClose(sparsifyDellaMagprune(f32([1, 1, 1, 1]), [4], 0.5, 0.3, constantUniform(0.5), false), [0, 0, 1, 1]);
  });

  test("rescales by the L1 ratio", () => {
    // L1 before = .4+.1+.3+.2+5+8+6+7 = 27, after = .4+.3+8+7 = 15.7
    const s = r32(r32(27) / r32(15.7));
    const d = sparsifyDellaMagprune(f32(rows), [2, 4], 0.5, 0.3, constantUniform(0.5), true);
    assertAllClose(d, [0.4 * s, 0, 0.3 * s, 0, 0, 8 * s, 0, 7 * s], 1e-6);
  });

  test("refuses density ± epsilon outside (0, 1) and zeroes at density ≤ 0", () => {
    assert.throws(() => sparsifyDellaMagprune(f32([1, 2]), [2], 0.2, 0.2, constantUniform(0), false), /density ± epsilon/);
    assert.throws(() => sparsifyDellaMagprune(f32([1, 2]), [2], 0.9, 0.1, constantUniform(0), false), ParamError);
    assertAllClose(sparsifyDellaMagprune(f32([1, 2]), [2], 0, 0.5, constantUniform(0), false), [0, 0]);
    assertAllClose(sparsifyDellaMagprune(f32([1, 2]), [2], 1, 0.5, constantUniform(0), true), [1, 2]);
  });
});

describe("rescaleL1", () => {
  test("skips the rescale when either norm is below 1e-7", () => {
    const d = f32([1e-8, 0]);
    rescaleL1(d, 1);
    assertAllClose(d, [r32(1e-8), 0], 0);
    const e = f32([0.5, 0]);
    rescaleL1(e, 5e-8);
    assertAllClose(e, [0.5, 0], 0);
  });
});
