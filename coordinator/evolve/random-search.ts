/**
 * The baseline strategy: independent samples, either uniform in a box or Gaussian around x0
 * with a fixed σ. It learns nothing from fitness except which sample was best, which is what
 * makes it a fair control for CMA-ES at an equal evaluation budget.
 */
import { ParamError } from "@mergeloom/engine/errors";
import { Rng, type RngState } from "./rng.js";
import { argsortFitness, decodeNumber, encodeNumber, rankKey, type JsonNumber, type SearchStrategy } from "./search-strategy.js";

export type RandomSearchOptions =
  | { mode: "box"; lower: number[]; upper: number[]; popSize: number; seed: number; maxEvals?: number }
  | { mode: "gaussian"; x0: number[]; sigma0: number; popSize: number; seed: number; maxEvals?: number };

export interface RandomSearchState {
  kind: "random-search";
  version: 1;
  options: RandomSearchOptions;
  generation: number;
  countEval: number;
  rng: RngState;
  pending: number[][] | null;
  best: { x: number[]; f: JsonNumber } | null;
}

function validate(o: RandomSearchOptions): number {
  if (!Number.isInteger(o.popSize) || o.popSize < 1) {
    throw new ParamError(`create random search popSize ${o.popSize}: must be an integer ≥ 1`);
  }
  if (o.mode === "box") {
    const n = o.lower.length;
    if (n < 1 || o.upper.length !== n) {
      throw new ParamError("create random search bounds: lower and upper must be non-empty arrays of equal length");
    }
    for (let i = 0; i < n; i++) {
      if (!(Number.isFinite(o.lower[i]) && Number.isFinite(o.upper[i]) && o.lower[i] <= o.upper[i])) {
        throw new ParamError(`create random search bounds[${i}]: need finite lower ≤ upper, got [${o.lower[i]}, ${o.upper[i]}]`);
      }
    }
    return n;
  }
  if (o.mode === "gaussian") {
    if (o.x0.length < 1 || !o.x0.every(Number.isFinite)) {
      throw new ParamError("create random search x0: expected a non-empty array of finite numbers");
    }
    if (!(Number.isFinite(o.sigma0) && o.sigma0 > 0)) {
      throw new ParamError(`create random search sigma0 ${o.sigma0}: must be a finite number > 0`);
    }
    return o.x0.length;
  }
  throw new ParamError(`create random search mode '${String((o as { mode: unknown }).mode)}': unknown mode (known: box, gaussian)`);
}

export class RandomSearch implements SearchStrategy<RandomSearchState> {
  private readonly options: RandomSearchOptions;
  private readonly n: number;
  private rng: Rng;
  private gen = 0;
  private evals = 0;
  private pending: number[][] | null = null;
  private bestSoFar: { x: number[]; f: number } | null = null;

  constructor(options: RandomSearchOptions) {
    this.n = validate(options);
    this.options = structuredClone(options);
    this.rng = new Rng(options.seed);
  }

  get generation(): number {
    return this.gen;
  }
  get countEval(): number {
    return this.evals;
  }

  ask(): number[][] {
    if (this.pending === null) {
      const o = this.options;
      const pop: number[][] = [];
      for (let j = 0; j < o.popSize; j++) {
        const x = new Array<number>(this.n);
        for (let i = 0; i < this.n; i++) {
          x[i] = o.mode === "box" ? o.lower[i] + (o.upper[i] - o.lower[i]) * this.rng.next() : o.x0[i] + o.sigma0 * this.rng.normal();
        }
        pop.push(x);
      }
      this.pending = pop;
    }
    return this.pending.map((x) => [...x]);
  }

  tell(solutions: number[][], fitness: number[]): void {
    if (solutions.length !== fitness.length || solutions.length === 0) {
      throw new ParamError(
        `tell random search generation ${this.gen}: expected as many fitness values as solutions (≥ 1), got ${solutions.length} and ${fitness.length}`,
      );
    }
    const bestIdx = argsortFitness(fitness)[0];
    const f = rankKey(fitness[bestIdx]);
    if (this.bestSoFar === null || f < this.bestSoFar.f) this.bestSoFar = { x: [...solutions[bestIdx]], f };
    this.evals += solutions.length;
    this.gen += 1;
    this.pending = null;
  }

  stop(): string[] {
    const max = this.options.maxEvals;
    return max !== undefined && this.evals >= max ? ["maxEvals"] : [];
  }

  best(): { x: number[]; f: number } | null {
    return this.bestSoFar === null ? null : { x: [...this.bestSoFar.x], f: this.bestSoFar.f };
  }

  state(): RandomSearchState {
    return {
      kind: "random-search",
      version: 1,
      options: structuredClone(this.options),
      generation: this.gen,
      countEval: this.evals,
      rng: this.rng.state(),
      pending: this.pending === null ? null : this.pending.map((x) => [...x]),
      best: this.bestSoFar === null ? null : { x: [...this.bestSoFar.x], f: encodeNumber(this.bestSoFar.f) },
    };
  }

  static fromState(state: RandomSearchState): RandomSearch {
    if (state?.kind !== "random-search" || state.version !== 1) {
      throw new ParamError(
        `restore random search state: expected kind 'random-search' version 1, got kind '${String(state?.kind)}' version ${String(state?.version)}`,
      );
    }
    const rs = new RandomSearch(state.options);
    rs.gen = state.generation;
    rs.evals = state.countEval;
    rs.rng = Rng.fromState(state.rng);
    rs.pending = state.pending === null ? null : state.pending.map((x) => [...x]);
    rs.bestSoFar = state.best === null ? null : { x: [...state.best.x], f: decodeNumber(state.best.f) };
    return rs;
  }
}
