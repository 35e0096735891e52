import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { CmaEs } from "./cma-es.js";
import { RandomSearch } from "./random-search.js";
import type { SearchStrategy } from "./search-strategy.js";

const sphere = (x: number[]): number => x.reduce((s, v) => s + v * v, 0);

function spend<S>(s: SearchStrategy<S>, f: (x: number[]) => number, budget: number): number {
  while (s.countEval < budget) {
    const xs = s.ask();
    s.tell(xs, xs.map(f));
  }
  return s.best()!.f;
}

describe("RandomSearch", () => {
  test("box mode samples inside the box and covers it", () => {
    const rs = new RandomSearch({ mode: "box", lower: [-1, 2], upper: [1, 3], popSize: 500, seed: 1 });
    const xs = rs.ask();
    assert.equal(xs.length, 500);
    for (const [a, b] of xs) assert.ok(a >= -1 && a < 1 && b >= 2 && b < 3);
    const meanA = xs.reduce((s, x) => s + x[0], 0) / xs.length;
    assert.ok(Math.abs(meanA) < 0.1, `mean of the first coordinate ${meanA}`); // sd of mean ≈ 0.026
  });

  test("gaussian mode samples around x0 with spread sigma0", () => {
    const rs = new RandomSearch({ mode: "gaussian", x0: [5, -5], sigma0: 2, popSize: 4000, seed: 2 });
    const xs = rs.ask();
    const m = xs.reduce((s, x) => s + x[0], 0) / xs.length;
    const v = xs.reduce((s, x) => s + (x[0] - m) ** 2, 0) / xs.length;
    assert.ok(Math.abs(m - 5) < 0.15, `mean ${m}`);
    assert.ok(Math.abs(v - 4) < 0.4, `variance ${v}`);
  });

  test("best() is the lowest fitness told so far and maxEvals stops it", () => {
    const rs = new RandomSearch({ mode: "box", lower: [0], upper: [1], popSize: 3, seed: 1, maxEvals: 6 });
    rs.tell([[0.1], [0.2], [0.3]], [5, 2, NaN]);
    rs.tell([[0.4], [0.5], [0.6]], [3, 4, 9]);
    assert.deepEqual(rs.best(), { x: [0.2], f: 2 });
    assert.deepEqual(rs.stop(), ["maxEvals"]);
  });

  test("a JSON round-tripped state continues the same samples", () => {
    const opts = { mode: "gaussian" as const, x0: [0, 0, 0], sigma0: 1, popSize: 5, seed: 11 };
    const a = new RandomSearch(opts);
    spend(a, sphere, 15);
    const b = RandomSearch.fromState(JSON.parse(JSON.stringify(a.state())));
    spend(a, sphere, 40);
    spend(b, sphere, 40);
    assert.deepEqual(b.state(), a.state());
    assert.deepEqual(b.ask(), a.ask());
  });

  test("unknown modes and inverted bounds are rejected", () => {
    assert.throws(() => new RandomSearch({ mode: "grid", popSize: 1, seed: 1 } as never), /known: box, gaussian/);
    assert.throws(() => new RandomSearch({ mode: "box", lower: [1], upper: [0], popSize: 1, seed: 1 }), /lower ≤ upper/);
  });

  test("random search is far worse than CMA-ES on the 10-D sphere for an equal budget", () => {
    const budget = 1500;
    const x0 = new Array(10).fill(1);
    const cma = spend(new CmaEs({ x0, sigma0: 0.5, seed: 4 }), sphere, budget);
    const rnd = spend(new RandomSearch({ mode: "gaussian", x0, sigma0: 0.5, popSize: 10, seed: 4 }), sphere, budget);
    const box = spend(new RandomSearch({ mode: "box", lower: new Array(10).fill(-2), upper: new Array(10).fill(2), popSize: 10, seed: 4 }), sphere, budget);
    assert.ok(cma < 1e-6, `cma ${cma}`);
    assert.ok(rnd > 1e3 * cma && rnd > 0.1, `gaussian random search ${rnd}`);
    assert.ok(box > 1e3 * cma && box > 0.1, `box random search ${box}`);
  });
});
