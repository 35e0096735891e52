import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "./rng.js";

describe("Rng", () => {
  test("the raw stream is xoshiro128** (reference outputs for state {1, 2, 3, 4})", () => {
    // The first outputs of the authors' reference C code for s = {1, 2, 3, 4}; the first three
    // by hand: rotl(2·5, 7)·9 = 11520; then b becomes 0 → 0; then rotl(1029·5, 7)·9 = 5927040.
    const rng = Rng.fromState({ s: [1, 2, 3, 4], spare: null });
    const got = Array.from({ length: 10 }, () => rng.nextUint32());
    assert.deepEqual(got, [11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849, 3729100597, 4258142804]);
  });

  test("next() is built from two outputs with 27 + 26 bits", () => {
    const a = Rng.fromState({ s: [1, 2, 3, 4], spare: null });
    const b = Rng.fromState({ s: [1, 2, 3, 4], spare: null });
    const hi = b.nextUint32() >>> 5;
    const lo = b.nextUint32() >>> 6;
    assert.equal(a.next(), (hi * 2 ** 26 + lo) / 2 ** 53);
  });

  test("the same seed gives the same stream and different seeds do not", () => {
    const draw = (seed: number): number[] => {
      const r = new Rng(seed);
      return Array.from({ length: 50 }, (_, i) => (i % 2 ? r.next() : r.normal()));
    };
    assert.deepEqual(draw(7), draw(7));
    assert.notDeepEqual(draw(7), draw(8));
    assert.notDeepEqual(draw(1), draw(1 + 2 ** 32));
  });

  test("uniforms lie in [0, 1) with mean 1/2 and normals have mean 0 and variance 1", () => {
    const r = new Rng(123);
    const N = 40000;
    let su = 0;
    let sn = 0;
    let sn2 = 0;
    for (let i = 0; i < N; i++) {
      const u = r.next();
      assert.ok(u >= 0 && u < 1);
      su += u;
      const z = r.normal();
      sn += z;
      sn2 += z * z;
    }
    // tolerances are > 5 standard errors
    assert.ok(Math.abs(su / N - 0.5) < 0.008, `uniform mean ${su / N}`);
    assert.ok(Math.abs(sn / N) < 0.025, `normal mean ${sn / N}`);
    assert.ok(Math.abs(sn2 / N - 1) < 0.04, `normal variance ${sn2 / N}`);
  });

  test("a JSON round-tripped state continues the exact stream, including a cached normal", () => {
    const r = new Rng(99);
    r.normal(); // leaves the pair's second deviate cached
    const saved = JSON.parse(JSON.stringify(r.state()));
    assert.notEqual(saved.spare, null);
    const resumed = Rng.fromState(saved);
    const a = Array.from({ length: 20 }, () => [r.normal(), r.next()]);
    const b = Array.from({ length: 20 }, () => [resumed.normal(), resumed.next()]);
    assert.deepEqual(b, a);
  });

  test("an invalid state is rejected", () => {
    assert.throws(() => Rng.fromState({ s: [0, 0, 0, 0], spare: null }), /restore rng state/);
    assert.throws(() => Rng.fromState({ s: [1, 2, 3], spare: null } as never), /restore rng state/);
    assert.throws(() => Rng.fromState({ s: [1, 2, 3, 2 ** 32], spare: null }), /restore rng state/);
  });
});
