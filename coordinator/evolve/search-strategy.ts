/**
 * The ask/tell contract shared by every search strategy (CMA-ES, random search), so the search
 * loop, its checkpoints and its tests treat them alike. Fitness is minimised; a caller that
 * maximises a score passes its negation. Non-finite fitness (a failed merge or evaluation) ranks
 * after every finite value (NaN is ranked as +Infinity).
 */
export interface SearchStrategy<S> {
  /** Candidates of the current generation; calling again before `tell` returns the same ones. */
  ask(): number[][];
  /** Reports fitness for the candidates, in the order `ask` returned them. */
  tell(solutions: number[][], fitness: number[]): void;
  /** Reasons to stop (empty while the search should go on). */
  stop(): string[];
  /** The best candidate told so far, or null before the first `tell`. */
  best(): { x: number[]; f: number } | null;
  /** CMA-ES: the current distribution mean (pycma's `xfavorite`); absent for strategies without one. */
  readonly distributionMean?: number[];
  readonly generation: number;
  readonly countEval: number;
  /** A JSON-serialisable snapshot; the strategy's `fromState` resumes bit-identically. */
  state(): S;
}

/** The ranking value of a fitness: NaN (a failed evaluation) counts as +Infinity. */
export function rankKey(f: number): number {
  return Number.isNaN(f) ? Infinity : f;
}

/** Indices of `fitness` sorted ascending; ties keep the lower index first (stable). */
export function argsortFitness(fitness: readonly number[]): number[] {
  const idx = fitness.map((_, i) => i);
  idx.sort((i, j) => {
    const a = rankKey(fitness[i]);
    const b = rankKey(fitness[j]);
    if (a < b) return -1;
    if (a > b) return 1;
    return i - j;
  });
  return idx;
}

/** A number that may be ±Infinity, stored as a string when it is (JSON has no Infinity). */
export type JsonNumber = number | "Infinity" | "-Infinity";

export function encodeNumber(x: number): JsonNumber {
  if (x === Infinity) return "Infinity";
  if (x === -Infinity) return "-Infinity";
  return x;
}

export function decodeNumber(x: JsonNumber): number {
  return typeof x === "string" ? Number(x) : x;
}
