import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ParamError } from "../errors/index.js";
import {
  breadcrumbs,
  breadcrumbsTies,
  dareLinear,
  dareTies,
  della,
  dellaLinear,
  generalizedTaskArithmeticMethods,
  taskArithmetic,
  ties,
} from "./generalized-task-arithmetic.js";
import { assertAllClose, constantUniform, fixedUniform, gtaContext, runGta } from "./gta-test-context.js";
import { sparsifyMagnitudeOutliers } from "./sparsify.js";
import type { MergeMethod } from "./define-merge-method.js";

const r32 = (x: number) => Math.fround(x);

/** The elementwise predicate as the driver evaluates it. */
function isElementwise(m: (typeof generalizedTaskArithmeticMethods)[number], densities: number[]): boolean {
  const e = m.elementwise;
  if (typeof e !== "function") return e === true;
  return e(
    {},
    densities.map((density) => ({ params: { weight: 1, density } })),
  );
}

describe("method table", () => {
  test("declares the eight mergekit names with mergekit's normalize/rescale defaults", () => {
    const rows = generalizedTaskArithmeticMethods.map((m) => [m.name, m.params.normalize.default, m.params.rescale.default, m.base]);
    assert.deepEqual(rows, [
      ["task_arithmetic", false, false, "required"],
      ["ties", true, false, "required"],
      ["dare_linear", false, true, "required"],
      ["dare_ties", false, true, "required"],
      ["breadcrumbs", false, false, "required"],
      ["breadcrumbs_ties", false, false, "required"],
      ["della", true, true, "required"],
      ["della_linear", false, true, "required"],
    ]);
  });

  test("declares weight as required, density 1, gamma only for breadcrumbs and epsilon only for della", () => {
    assert.equal(ties.modelParams.weight.required, true);
    assert.equal(ties.modelParams.density.default, 1);
    assert.equal(breadcrumbs.modelParams.gamma.default, 0.01);
    assert.equal(breadcrumbsTies.modelParams.gamma.default, 0.01);
    assert.equal(della.modelParams.epsilon.default, 0.15);
    assert.equal(ties.modelParams.gamma, undefined);
    assert.equal(ties.modelParams.epsilon, undefined);
    assert.equal(ties.params.lambda.default, 1);
    assert.equal(ties.params.int8_mask.default, false);
  });

  test("is elementwise only when no sparsifier runs", () => {
    assert.equal(isElementwise(taskArithmetic, [0.5]), true);
    assert.equal(isElementwise(ties, [1, 1]), true);
    assert.equal(isElementwise(ties, [1, 0.5]), false);
    assert.equal(isElementwise(dareLinear, [1]), true);
    assert.equal(isElementwise(dareLinear, [0.9]), false);
    assert.equal(isElementwise(della, [0.5]), false);
  });
});

describe("task_arithmetic", () => {
  // B = [1 2 3 4]; δ1 = [1 0 2 −4], δ2 = [−1 1 0 2]
  const base = [1, 2, 3, 4];
  const x1 = [2, 2, 5, 0];
  const x2 = [0, 3, 3, 6];

  test("adds the weighted task vectors to the base", () => {
    // mix = .5·δ1 + δ2 = [−.5 1 1 0] → B + mix
    const out = runGta(taskArithmetic, {
      base,
      models: [
        { data: x1, params: { weight: 0.5 } },
        { data: x2, params: { weight: 1 } },
      ],
    });
    assertAllClose(out, [0.5, 3, 4, 4]);
  });

  test("divides by the weight sum when normalize is set, then applies lambda", () => {
    // mix / 1.5 = [−1/3 2/3 2/3 0]; λ = 3 → [−1 2 2 0] → B + that
    const out = runGta(taskArithmetic, {
      base,
      models: [
        { data: x1, params: { weight: 0.5 } },
        { data: x2, params: { weight: 1 } },
      ],
      params: { normalize: true, lambda: 3 },
    });
    assertAllClose(out, [0, 4, 5, 4], 1e-6);
  });

  test("forces the divisor to 1 when the weights sum to 0", () => {
    // w = 1, −1: mix = δ1 − δ2 = [2 −1 2 −6]; div = 0 → 1
    const out = runGta(taskArithmetic, {
      base,
      models: [
        { data: x1, params: { weight: 1 } },
        { data: x2, params: { weight: -1 } },
      ],
      params: { normalize: true },
    });
    assertAllClose(out, [3, 1, 5, -2]);
  });

  test("skips the base's own entry wherever it is listed", () => {
    // base listed first; only x1 is a task vector: B + 2·δ1 = [3 2 7 −4]
    const out = runGta(taskArithmetic, { base, baseIndex: 0, models: [{ data: x1, params: { weight: 2 } }] });
    assertAllClose(out, [3, 2, 7, -4]);
  });

  test("returns the base when it is the only input", () => {
    assertAllClose(runGta(taskArithmetic, { base, models: [] }), base);
  });

  test("refuses a tensor without a base, and a model without a weight", () => {
    const ctx = gtaContext(taskArithmetic, { base, models: [{ data: x1, params: { weight: 1 } }] });
    assert.throws(
      () => taskArithmetic.merge({ ...ctx, baseIndex: -1 }),
      (e: unknown) => e instanceof ParamError && /needs a base model/.test(e.message),
    );
    const noWeight = gtaContext(taskArithmetic, { base, models: [{ data: x1, model: "org/a" }] });
    assert.throws(
      () => taskArithmetic.check!(noWeight),
      (e: unknown) => e instanceof ParamError && /org\/a/.test(e.message) && /weight/.test(e.message),
    );
    assert.throws(() => taskArithmetic.merge(noWeight), ParamError);
  });
});

describe("ties", () => {
  // B = 1s; three models with densities 1 (no pruning), weights 1:
  //        e0       e1       e2       e3     e4       e5       e6        e7
  // δ1:    1        −2       3        0      1        −1       −3        .5
  // δ2:    2        1        −1       0      −1       1        1         −.25
  // δ3:    −1       1        −1       0      0        0        −1        −.25
  // Σ:     2(+)     0(+)     1(+)     0(+)   0(+)     0(+)     −3(−)     0(+)
  // agree: 1,2      1,1      3        –      1        1        −3,−1     .5
  // mean:  1.5      1        3        0/1=0  1        1        −2        .5
  const base = new Array(8).fill(1);
  const d1 = [1, -2, 3, 0, 1, -1, -3, 0.5];
  const d2 = [2, 1, -1, 0, -1, 1, 1, -0.25];
  const d3 = [-1, 1, -1, 0, 0, 0, -1, -0.25];
  const plus1 = (d: number[]) => d.map((v) => v + 1);

  test("averages only the entries that agree with the elected sign, an exact-zero sum electing +", () => {
    const out = runGta(ties, { base, models: [d1, d2, d3].map((d) => ({ data: plus1(d), params: { weight: 1 } })) });
    assertAllClose(out, [2.5, 2, 4, 1, 2, 2, -1, 1.5]);
  });

  test("elects the sign on the weighted vectors and sums without normalize", () => {
    // δ = [1] and [−1], w = 1, 3 → x = 1, −3, Σ = −2 → −; mix = −3; normalized −3/3 = −1
    const models = [
      { data: [1], params: { weight: 1 } },
      { data: [-1], params: { weight: 3 } },
    ];
    assertAllClose(runGta(ties, { base: [0], models }), [-1]);
    assertAllClose(runGta(ties, { base: [0], models, params: { normalize: false } }), [-3]);
  });

  test("prunes each task vector by magnitude before the election", () => {
    // δ1 = [4 −1 .5 −3] → top 2: [4 0 0 −3]; δ2 = [−2 3 1 .1] → top 2: [−2 3 0 0]
    // Σ = [2 3 0 −3] → + + + −; agreeing: [4] [3] [] [−3] → [4 3 0 −3]
    const out = runGta(ties, {
      base: [0, 0, 0, 0],
      models: [
        { data: [4, -1, 0.5, -3], params: { weight: 1, density: 0.5 } },
        { data: [-2, 3, 1, 0.1], params: { weight: 1, density: 0.5 } },
      ],
    });
    assertAllClose(out, [4, 3, 0, -3]);
  });

  test("applies lambda after the disjoint mean", () => {
    // element 0 of the first case: mean 1.5, λ = .5 → 1 + .75
    const out = runGta(ties, { base: [1], models: [[2], [3], [0]].map((d) => ({ data: d, params: { weight: 1 } })), params: { lambda: 0.5 } });
    assertAllClose(out, [1.75]);
  });

  test("refuses a density that keeps no entry, in check and in merge", () => {
    const o = { base: [0, 0, 0, 0], models: [{ data: [1, 2, 3, 4], params: { weight: 1, density: 0.1 } }] };
    assert.throws(
      () => ties.check!(gtaContext(ties, o)),
      (e: unknown) => e instanceof ParamError && /density 0\.1/.test(e.message),
    );
    assert.throws(() => ties.merge(gtaContext(ties, o)), ParamError);
  });

  test("leaves the inputs unmodified", () => {
    const ctx = gtaContext(ties, { base: [1, 1], models: [{ data: [3, 0], params: { weight: 2, density: 0.5 } }] });
    ties.merge(ctx);
    assert.deepEqual(Array.from(ctx.inputs[0].data), [3, 0]);
    assert.deepEqual(Array.from(ctx.inputs[1].data), [1, 1]);
  });
});

describe("dare", () => {
  // δ1 = [1 2 3 4], w 1, u = .1 .6 .3 .9, p .5 → [1 0 3 0], L1 10/4 → [2.5 0 7.5 0]
  // δ2 = [−2 −2 −2 −2], w .5, u = .2 .2 .8 .8 → [−2 −2 0 0], L1 8/4 → [−4 −4 0 0] → x2 = [−2 −2 0 0]
  const streams = [
    [0.1, 0.6, 0.3, 0.9],
    [0.2, 0.2, 0.8, 0.8],
  ];
  const opts = {
    base: [0, 0, 0, 0],
    models: [
      { data: [1, 2, 3, 4], params: { weight: 1, density: 0.5 } },
      { data: [-2, -2, -2, -2], params: { weight: 0.5, density: 0.5 } },
    ],
    random: (i: number) => fixedUniform(streams[i]),
  };

  test("dare_linear sums the rescaled random-pruned vectors", () => {
    assertAllClose(runGta(dareLinear, opts), [0.5, -2, 7.5, 0]);
  });

  test("dare_ties elects signs on the pruned vectors", () => {
    // x1 = [2.5 0 7.5 0], x2 = [−2 −2 0 0]: Σ = [.5 −2 7.5 0] → + − + +
    assertAllClose(runGta(dareTies, opts), [2.5, -2, 7.5, 0]);
    // normalize: divisors [1 .5 1 0→1] → [2.5 −4 7.5 0]
    assertAllClose(runGta(dareTies, { ...opts, params: { normalize: true } }), [2.5, -4, 7.5, 0]);
  });

  test("draws the same mask for the same seed and tensor, another for another tensor or seed", () => {
    const data = Array.from({ length: 256 }, (_, i) => (i % 7) - 3 + 0.5);
    const run = (seed: number, tensorName: string) =>
      Array.from(
        runGta(dareLinear, {
          base: new Array(256).fill(0),
          models: [{ data, params: { weight: 1, density: 0.5 } }],
          seed,
          tensorName,
          params: { rescale: false },
        }),
      );
    const a = run(1, "model.layers.0.mlp.up_proj.weight");
    assert.deepEqual(run(1, "model.layers.0.mlp.up_proj.weight"), a);
    assert.notDeepEqual(run(1, "model.layers.1.mlp.up_proj.weight"), a);
    assert.notDeepEqual(run(2, "model.layers.0.mlp.up_proj.weight"), a);
  });

  test("gives each input its own mask", () => {
    const data = new Array(512).fill(1);
    const ctx = gtaContext(dareLinear, {
      base: new Array(512).fill(0),
      models: [
        { data, params: { weight: 1, density: 0.5 } },
        { data, params: { weight: 1000, density: 0.5 } },
      ],
      params: { rescale: false },
    });
    const out = dareLinear.merge(ctx);
    // entry = m1 + 1000·m2: both masks visible, and they differ
    const m1 = Array.from(out, (v) => v % 1000);
    const m2 = Array.from(out, (v) => Math.floor(v / 1000));
    assert.notDeepEqual(m1, m2);
  });

  test("keeps about p of the entries and preserves the L1 norm with rescale", () => {
    const n = 20_000;
    const data = Array.from({ length: n }, (_, i) => Math.sin(i) * 0.01);
    const base = new Array(n).fill(0);
    const pruned = runGta(dareLinear, { base, models: [{ data, params: { weight: 1, density: 0.3 } }], params: { rescale: false } });
    let kept = 0;
    for (const v of pruned) if (v !== 0) kept++;
    assert.ok(Math.abs(kept / n - 0.3) < 0.015, `kept ${kept / n}`);
    const rescaled = runGta(dareLinear, { base, models: [{ data, params: { weight: 1, density: 0.3 } }] });
    const l1 = (xs: ArrayLike<number>) => Array.from(xs).reduce((s, v) => s + Math.abs(v), 0);
    assert.ok(Math.abs(l1(rescaled) / l1(Float32Array.from(data)) - 1) < 1e-5);
  });
});

describe("breadcrumbs", () => {
  test("drops outliers and small entries per task vector", () => {
    // n = 8, p = .5, γ = .125: target 4, n_top 1, n_bot 3; |δ| ascending .1 .2 .3 | .4 .5 .6 .7 | .8
    const out = runGta(breadcrumbs, {
      base: new Array(8).fill(1),
      models: [{ data: [0.1, 0.8, 0.5, 0.2, 0.6, 0.3, 0.4, 0.7].map((v) => v + 1), params: { weight: 2, density: 0.5, gamma: 0.125 } }],
    });
    // kept δ = [0 0 .5 0 .6 0 .4 .7], × 2, + 1
    assertAllClose(out, [1, 1, 2, 1, 2.2, 1, 1.8, 2.4], 1e-6);
  });

  test("leaves a 64-element norm vector at the base with the default gamma (n_top == 0 quirk)", () => {
    const base = Array.from({ length: 64 }, (_, i) => 1 + i / 64);
    const data = base.map((v, i) => v + (i % 2 ? 0.1 : -0.2));
    const out = runGta(breadcrumbs, { base, models: [{ data, params: { weight: 1, density: 0.5 } }] });
    assertAllClose(out, Array.from(Float32Array.from(base)), 0);
  });

  test("breadcrumbs_ties combines pruning with the sign election", () => {
    // p = .5, γ = .25 on 4 entries: target 2, n_top 1, n_bot 1 → keep ascending positions 1, 2
    // δ1 = [4 −1 2 .5] → asc .5 1 2 4 → keep −1 (i1), 2 (i2): [0 −1 2 0]
    // δ2 = [−3 .1 .2 −1] → asc .1 .2 1 3 → keep .2 (i2), −1 (i3): [0 0 .2 −1]
    // Σ = [0 −1 2.2 −1] → + − + −; no normalize → [0 −1 2.2 −1]
    const out = runGta(breadcrumbsTies, {
      base: [0, 0, 0, 0],
      models: [
        { data: [4, -1, 2, 0.5], params: { weight: 1, density: 0.5, gamma: 0.25 } },
        { data: [-3, 0.1, 0.2, -1], params: { weight: 1, density: 0.5, gamma: 0.25 } },
      ],
    });
    assertAllClose(out, [0, -1, 2.2, -1], 1e-6);
  });
});

describe("della", () => {
  // rows [.4 −.1 .3 −.2], [−5 8 6 7]; p .5, ε .3, u = .5 → kept [.4 0 .3 0 0 8 0 7] (see sparsify tests)
  const rows = [0.4, -0.1, 0.3, -0.2, -5, 8, 6, 7];

  test("della_linear ranks per row and rescales by the L1 ratio", () => {
    const o = {
      base: new Array(8).fill(0),
      shape: [2, 4],
      models: [{ data: rows, params: { weight: 1, density: 0.5, epsilon: 0.3 } }],
      random: () => constantUniform(0.5),
    };
    assertAllClose(runGta(dellaLinear, { ...o, params: { rescale: false } }), [0.4, 0, 0.3, 0, 0, 8, 0, 7]);
    const s = r32(r32(27) / r32(15.7)); // L1 27 → 15.7
    assertAllClose(runGta(dellaLinear, o), [0.4 * s, 0, 0.3 * s, 0, 0, 8 * s, 0, 7 * s], 1e-6);
  });

  test("della ranks a 1-D tensor as one row and takes the disjoint mean", () => {
    // model 1 alone (1-D): keeps [0 0 0 0 −5 8 6 7]; model 2 = −model 1 with u = .9 keeps nothing
    // → only model 1 survives; normalize divides by its weight 2 after x = 2·δ; no rescale
    const out = runGta(della, {
      base: new Array(8).fill(0),
      models: [
        { data: rows, params: { weight: 2, density: 0.5, epsilon: 0.3 } },
        { data: rows.map((v) => -v), params: { weight: 1, density: 0.5, epsilon: 0.3 } },
      ],
      params: { rescale: false },
      random: (i) => constantUniform(i === 0 ? 0.5 : 0.9),
    });
    assertAllClose(out, [0, 0, 0, 0, -5, 8, 6, 7]);
  });

  test("refuses density ± epsilon outside (0, 1) before merging", () => {
    const ctx = gtaContext(della, { base: [0, 0], models: [{ data: [1, 2], params: { weight: 1, density: 0.1 } }] }); // ε = .15 > p
    assert.throws(
      () => della.check!(ctx),
      (e: unknown) => e instanceof ParamError && /epsilon/.test(e.message),
    );
    assert.throws(() => della.merge(ctx), ParamError);
  });

  test("draws the same mask for the same seed and tensor, another for another tensor", () => {
    const data = Array.from({ length: 128 }, (_, i) => Math.cos(i));
    const run = (tensorName: string) =>
      Array.from(runGta(dellaLinear, { base: new Array(128).fill(0), shape: [4, 32], models: [{ data, params: { weight: 1, density: 0.5 } }], tensorName }));
    assert.deepEqual(run("a.weight"), run("a.weight"));
    assert.notDeepEqual(run("a.weight"), run("b.weight"));
  });
});

describe("droppedInputs: task vectors a GTA method keeps nothing of, whatever the data", () => {
  const dropped = (m: MergeMethod, c: ReturnType<typeof ctx>) => m.droppedInputs!(c).map((d) => d.input);
  const ctx = (numel: number, models: Array<{ density?: number; gamma?: number }>) => ({
    tensorName: "t",
    shape: [numel],
    baseIndex: 0,
    params: {},
    inputs: [{ model: "base", params: {} }, ...models.map((p, i) => ({ model: `m${i}`, params: { weight: 1, ...p } }))],
  });

  test("n_top = int(gamma·numel) = 0 drops the input: gamma 0, or fewer than 1/gamma elements", () => {
    // int(0.01·64) = 0 → [n_bot:-0] is empty; int(0.01·100) = 1 → 49 kept; gamma 0 → empty at any size
    assert.deepEqual(dropped(breadcrumbs, ctx(64, [{ density: 0.5 }])), [1]);
    assert.deepEqual(dropped(breadcrumbs, ctx(100, [{ density: 0.5 }])), []);
    assert.deepEqual(dropped(breadcrumbs, ctx(1_000_000, [{ density: 0.5, gamma: 0 }, { density: 0.5 }])), [1]);
    assert.deepEqual(
      dropped(
        breadcrumbsTies,
        ctx(150, [
          { density: 0.5, gamma: 0.005 },
          { density: 0.5, gamma: 0.01 },
        ]),
      ),
      [1],
    );
  });

  test("density 1 ignores gamma, the base has no task vector, and n_bot < 0 keeps n_top > 0", () => {
    assert.deepEqual(dropped(breadcrumbs, ctx(64, [{ density: 1, gamma: 0 }, {}])), []);
    // numel 100, density 0.995: target 99, n_top 1, n_bot 0 → positions [0, 99) kept
    assert.deepEqual(dropped(breadcrumbs, ctx(100, [{ density: 0.995 }])), []);
    const withBase = ctx(64, [{ density: 0.5 }]);
    withBase.inputs[0] = { model: "base", params: { weight: 1, density: 0.5 } } as never;
    assert.deepEqual(dropped(breadcrumbs, withBase), [1]);
  });

  test("the sparsifier agrees: a dropped input's task vector comes out all zero", () => {
    const delta = Float32Array.from({ length: 64 }, (_, i) => i - 31.5);
    assert.ok(sparsifyMagnitudeOutliers(delta, 0.5, 0.01, false).every((v) => v === 0));
    assert.equal(
      sparsifyMagnitudeOutliers(
        Float32Array.from({ length: 100 }, (_, i) => i + 1),
        0.5,
        0.01,
        false,
      ).filter((v) => v !== 0).length,
      50,
    );
  });

  test("a random-drop density of 0 drops the input (DARE and DELLA keep each element with probability density)", () => {
    assert.deepEqual(dropped(dareTies, ctx(1000, [{ density: 0 }, { density: 0.5 }])), [1]);
    assert.deepEqual(dropped(dareLinear, ctx(1000, [{ density: 0.001 }])), []);
    assert.deepEqual(dropped(della, ctx(1000, [{ density: 0 }])), [1]);
    const [d] = dareTies.droppedInputs!(ctx(1000, [{ density: 0 }]));
    assert.equal(d.param, "density");
    assert.match(d.fix, /density in \(0, 1\]/);
  });

  test("lambda 0 drops every model; magnitude pruning drops none (its k = 0 is refused by check)", () => {
    const c = ctx(1000, [{ density: 0.5 }, {}]);
    assert.deepEqual(dropped(ties, c), []);
    assert.deepEqual(dropped(taskArithmetic, c), []);
    for (const m of [ties, taskArithmetic, breadcrumbs]) {
      const d = m.droppedInputs!({ ...c, params: { lambda: 0 } });
      assert.deepEqual(
        d.map((x) => x.input),
        [1, 2],
      );
      assert.equal(d[0].param, "lambda");
    }
    assert.deepEqual(dropped(taskArithmetic, { ...c, params: { lambda: 0.5 } }), []);
  });
});
