/** What a finished `mergeloom evolve` left in its output directory, and the check that two runs agree. */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

export interface SearchState {
  evaluations: { id: string; fitness: number | string; scores: Record<string, number | string> }[];
  baselines: { name: string; fitness: number; scores: Record<string, number> }[];
  best: { id: string; fitness: number } | null;
}

export interface SearchOutputs {
  best: string;
  state: SearchState;
}

export async function searchOutputs(out: string): Promise<SearchOutputs> {
  return { best: await readFile(join(out, "best.yml"), "utf8"), state: JSON.parse(await readFile(join(out, "state.json"), "utf8")) as SearchState };
}

/** The same evaluations (ids, fitness, scores, in order) and the same best.yml as the reference run. */
export function assertSameSearch(got: SearchOutputs, reference: SearchOutputs, evaluations: number): void {
  assert.equal(got.state.evaluations.length, evaluations);
  assert.deepEqual(
    got.state.evaluations.map((e) => [e.id, e.fitness, e.scores]),
    reference.state.evaluations.map((e) => [e.id, e.fitness, e.scores]),
  );
  assert.equal(got.best, reference.best);
}
