// Test support for the CMA-ES option tests: a state round trip must continue bit-identically.
import assert from "node:assert/strict";
import { CmaEs } from "./cma-es.js";

/** Restores `a` from its JSON state and checks that both draw, update and draw again alike. */
export function assertResumesBitIdentically(a: CmaEs, fitness: (x: number[]) => number): void {
  const b = CmaEs.fromState(JSON.parse(JSON.stringify(a.state())));
  const pa = a.ask();
  assert.deepEqual(b.ask(), pa);
  a.tell(pa, pa.map(fitness));
  b.tell(pa, pa.map(fitness));
  assert.deepEqual(b.distributionMean, a.distributionMean);
  assert.deepEqual(b.ask(), a.ask());
}
