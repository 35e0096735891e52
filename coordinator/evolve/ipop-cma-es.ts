/**
 * IPOP-CMA-ES (Auger & Hansen 2005): when a CMA-ES run is stuck — one of its own stopping rules
 * fires, or its best fitness has not improved for `patience` generations — start a fresh run from
 * x0 with twice the population (a larger population smooths a multimodal landscape, see the
 * Rastrigin test). The global best is kept across restarts; restart k draws from seed + k·7919 so
 * every run is reproducible from the search seed. `state()` nests the current run's state, so a
 * resumed search continues bit-identically, restarts included.
 */
import { ParamError } from "@mergeloom/engine/errors";
import { CmaEs, defaultPopSize, type CmaOptions, type CmaState } from "./cma-es.js";
import { decodeNumber, encodeNumber, rankKey, type JsonNumber, type SearchStrategy } from "./search-strategy.js";

export interface IpopOptions extends CmaOptions {
  /** Restart when the best fitness of the current run has not improved for this many generations (default 10 + ⌈30n/λ⌉). */
  patience?: number;
  /** Population multiplier per restart (default 2). */
  increase?: number;
  /** At most this many restarts (default 9: λ grows at most 512-fold). */
  maxRestarts?: number;
}

export interface IpopState {
  kind: "ipop-cma-es";
  version: 1;
  options: Required<Omit<IpopOptions, "popSize" | "tolFun" | "tolX" | "maxEvals" | "fTarget" | "diagonal" | "cmean" | "mirrored">> & CmaOptions;
  restarts: number;
  run: CmaState;
  /** Generations since the current run last improved its best, and that best. */
  stale: number;
  runBest: JsonNumber;
  /** Evaluations and generations of finished runs. */
  pastEvals: number;
  pastGenerations: number;
  best: { x: number[]; f: JsonNumber } | null;
  /** One line per restart: why, at which evaluation, the new λ. */
  log: string[];
}

export class IpopCmaEs implements SearchStrategy<IpopState> {
  private run: CmaEs;
  private restarts = 0;
  private stale = 0;
  private runBest = Infinity;
  private pastEvals = 0;
  private pastGenerations = 0;
  private bestSoFar: { x: number[]; f: number } | null = null;
  private readonly opts: IpopState["options"];
  readonly log: string[] = [];

  constructor(opts: IpopOptions) {
    const n = opts.x0.length;
    const lambda0 = opts.popSize ?? defaultPopSize(Math.max(1, n));
    this.opts = {
      ...opts,
      popSize: lambda0,
      patience: opts.patience ?? 10 + Math.ceil((30 * n) / lambda0),
      increase: opts.increase ?? 2,
      maxRestarts: opts.maxRestarts ?? 9,
    };
    if (!(Number.isInteger(this.opts.patience) && this.opts.patience >= 1))
      throw new ParamError(`create ipop-cma-es patience ${this.opts.patience}: must be an integer ≥ 1`);
    if (!(this.opts.increase >= 1)) throw new ParamError(`create ipop-cma-es increase ${this.opts.increase}: must be ≥ 1`);
    this.run = this.newRun(0);
  }

  private newRun(k: number): CmaEs {
    const popSize = Math.round(this.opts.popSize! * this.opts.increase ** k);
    return new CmaEs({ ...this.opts, popSize, seed: this.opts.seed + k * 7919 });
  }

  get generation(): number {
    return this.pastGenerations + this.run.generation;
  }
  get countEval(): number {
    return this.pastEvals + this.run.countEval;
  }
  get restartCount(): number {
    return this.restarts;
  }
  get popSize(): number {
    return this.run.popSize;
  }

  ask(): number[][] {
    return this.run.ask();
  }

  /** The current run's distribution mean. */
  get distributionMean(): number[] {
    return this.run.distributionMean;
  }

  tell(solutions: number[][], fitness: number[]): void {
    this.run.tell(solutions, fitness);
    const b = this.run.best()!;
    if (this.bestSoFar === null || b.f < this.bestSoFar.f) this.bestSoFar = { x: [...b.x], f: b.f };
    const f = rankKey(b.f);
    if (f < this.runBest) {
      this.runBest = f;
      this.stale = 0;
    } else this.stale++;
    const reasons = this.run.stop().filter((r) => r !== "maxEvals" && r !== "fTarget");
    if (this.stale >= this.opts.patience) reasons.push(`no improvement for ${this.stale} generations`);
    if (reasons.length > 0 && this.restarts < this.opts.maxRestarts) {
      this.restarts++;
      this.pastEvals += this.run.countEval;
      this.pastGenerations += this.run.generation;
      this.run = this.newRun(this.restarts);
      this.stale = 0;
      this.runBest = Infinity;
      this.log.push(`restart ${this.restarts} after ${this.pastEvals} evaluations (${reasons.join(", ")}): λ = ${this.run.popSize}`);
    }
  }

  stop(): string[] {
    const reasons = this.run.stop();
    if (this.restarts < this.opts.maxRestarts) return reasons.filter((r) => r === "maxEvals" || r === "fTarget");
    return reasons;
  }

  best(): { x: number[]; f: number } | null {
    return this.bestSoFar === null ? null : { x: [...this.bestSoFar.x], f: this.bestSoFar.f };
  }

  state(): IpopState {
    return {
      kind: "ipop-cma-es",
      version: 1,
      options: { ...this.opts, x0: [...this.opts.x0] },
      restarts: this.restarts,
      run: this.run.state(),
      stale: this.stale,
      runBest: encodeNumber(this.runBest),
      pastEvals: this.pastEvals,
      pastGenerations: this.pastGenerations,
      best: this.bestSoFar === null ? null : { x: [...this.bestSoFar.x], f: encodeNumber(this.bestSoFar.f) },
      log: [...this.log],
    };
  }

  static fromState(state: IpopState): IpopCmaEs {
    if (state?.kind !== "ipop-cma-es" || state.version !== 1) {
      throw new ParamError(`restore ipop-cma-es state: expected kind 'ipop-cma-es' version 1, got kind '${String(state?.kind)}'`);
    }
    const es = new IpopCmaEs(state.options);
    es.restarts = state.restarts;
    es.run = CmaEs.fromState(state.run);
    es.stale = state.stale;
    es.runBest = decodeNumber(state.runBest);
    es.pastEvals = state.pastEvals;
    es.pastGenerations = state.pastGenerations;
    es.bestSoFar = state.best === null ? null : { x: [...state.best.x], f: decodeNumber(state.best.f) };
    es.log.push(...state.log);
    return es;
  }
}
