import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { crowdingDistance, dominates, paretoFront, truncateByCrowding } from "./pareto.js";

const pts = (rows: number[][]): { scores: number[]; item: string }[] => rows.map((scores, i) => ({ scores, item: `p${i}` }));

describe("dominates", () => {
  test("requires ≥ on every task and > on at least one (maximisation)", () => {
    assert.equal(dominates([2, 2], [1, 2]), true);
    assert.equal(dominates([2, 2], [2, 2]), false);
    assert.equal(dominates([3, 1], [1, 3]), false);
    assert.equal(dominates([0, 0], [NaN, 0]), true); // NaN is the worst score
  });
});

describe("paretoFront", () => {
  test("keeps exactly the non-dominated points in input order", () => {
    // p1 dominates p0; p3 is dominated by p2; p4 duplicates p2
    const front = paretoFront(
      pts([
        [0.1, 0.5],
        [0.2, 0.6],
        [0.5, 0.4],
        [0.4, 0.4],
        [0.5, 0.4],
        [0.9, 0.1],
      ]),
    );
    assert.deepEqual(
      front.map((p) => p.item),
      ["p1", "p2", "p4", "p5"],
    );
    assert.deepEqual(
      front.map((p) => p.index),
      [1, 2, 4, 5],
    );
  });

  test("a single task reduces to the maximum (ties all kept)", () => {
    assert.deepEqual(
      paretoFront(pts([[1], [3], [2], [3]])).map((p) => p.item),
      ["p1", "p3"],
    );
  });

  test("NaN scores lose to any number, and an empty input gives an empty front", () => {
    assert.deepEqual(
      paretoFront(
        pts([
          [NaN, 1],
          [0, 1],
        ]),
      ).map((p) => p.item),
      ["p1"],
    );
    assert.deepEqual(paretoFront([]), []);
  });

  test("mismatched score lengths are rejected", () => {
    assert.throws(() => paretoFront(pts([[1, 2], [1]])), /point 1: has 1 scores, expected 2/);
  });
});

describe("crowding", () => {
  test("extremes get Infinity and interior points the normalised neighbour gaps summed over tasks", () => {
    // sorted by task 0: a(0) b(1) c(3) d(4); task 1 is the reverse order: 4, 3, 1, 0
    const d = crowdingDistance([
      [0, 4],
      [1, 3],
      [3, 1],
      [4, 0],
    ]);
    // b: (3-0)/4 + (4-1)/4 = 1.5; c: (4-1)/4 + (3-0)/4 = 1.5
    assert.deepEqual(d, [Infinity, 1.5, 1.5, Infinity]);
    assert.deepEqual(
      crowdingDistance([
        [0, 4],
        [2, 2],
        [3, 1],
        [4, 0],
      ]),
      [Infinity, (3 - 0) / 4 + (4 - 1) / 4, (4 - 2) / 4 + (2 - 0) / 4, Infinity],
    );
  });

  test("a task on which all points tie contributes nothing", () => {
    // task 0: middle point (4 - 1) / 3 = 1; task 1 spans 0
    assert.deepEqual(
      crowdingDistance([
        [1, 5],
        [2, 5],
        [4, 5],
      ]),
      [Infinity, 1, Infinity],
    );
  });

  test("truncation drops the most crowded points first and keeps input order", () => {
    const front = paretoFront(
      pts([
        [0, 10],
        [1, 9],
        [2, 8.5],
        [5, 5],
        [10, 0],
      ]),
    );
    // interior distances: p1 = 2/10 + 1.5/10, p2 = 4/10 + 4/10, p3 = 8/10 + 8.5/10
    assert.deepEqual(
      front.map((p) => p.crowding),
      [Infinity, 0.35, 0.8, 1.65, Infinity],
    );
    assert.deepEqual(
      truncateByCrowding(front, 3).map((p) => p.item),
      ["p0", "p3", "p4"],
    );
    assert.equal(truncateByCrowding(front, 10).length, 5);
  });
});
