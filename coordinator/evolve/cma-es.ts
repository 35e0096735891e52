/**
 * CMA-ES as in Hansen, "The CMA Evolution Strategy: A Tutorial" (arXiv:1604.00772), with the
 * default strategy parameters of its Table 1 (positive recombination weights only, no active
 * update): λ = 4 + ⌊3 ln n⌋, μ = ⌊λ/2⌋, log weights, cσ/dσ/cc/c1/cμ, cumulative step-size
 * adaptation, rank-one + rank-μ covariance update with the hσ stall, and a lazily refreshed
 * eigendecomposition (every λ/(c1+cμ)/n/10 evaluations, as the tutorial suggests).
 *
 * Minimises. Bounds are the caller's business (transform or repair the genotype before
 * evaluating); `tell` takes the solutions back, so repaired solutions may be passed in.
 *
 * `state()` captures everything that influences later draws (including the pending population
 * and the eigen cache), and `CmaEs.fromState(JSON.parse(JSON.stringify(state)))` continues
 * bit-identically: every number is a double, which JSON round-trips exactly.
 */
import { ParamError } from "@mergeloom/engine/errors";
import { Rng, type RngState } from "./rng.js";
import { argsortFitness, decodeNumber, encodeNumber, rankKey, type JsonNumber, type SearchStrategy } from "./search-strategy.js";
import { symmetricEigen } from "./symmetric-eigen.js";

export interface CmaOptions {
  x0: number[];
  sigma0: number;
  seed: number;
  /** λ; default 4 + ⌊3 ln n⌋. */
  popSize?: number;
  /** Stop when the recent best fitness values and the whole last generation span less than this. Default 1e-11. */
  tolFun?: number;
  /** Stop when σ·pc and σ·sqrt(diag C) are below this in every coordinate. Default 1e-11. */
  tolX?: number;
  /** Default 1e3·(n+5)²/sqrt(λ) (pycma's default). */
  maxEvals?: number;
  /** Stop once a fitness ≤ fTarget has been told. */
  fTarget?: number;
  /**
   * sep-CMA-ES (Ros & Hansen 2008): a diagonal covariance, learned (n+2)/3 times faster, O(n)
   * per sample. For high-dimensional genomes, where the full matrix learns too slowly.
   */
  diagonal?: boolean;
  /**
   * The mean's learning rate c_m in (0, 1] (pycma's `CMA_cmean`; Hansen's tutorial, eq. 9): the
   * mean moves this fraction of the recombination step, while the evolution paths see the whole
   * step. Below 1 the mean averages more generations, which damps noise it would otherwise follow. Default 1.
   */
  cmean?: number;
  /**
   * Mirrored sampling with pairwise selection (Auger, Brockhoff & Hansen, "Mirrored sampling in
   * evolution strategies with weighted recombination", GECCO 2011; pycma's `CMA_mirrors`): samples
   * come in pairs m ± σy, and only the better of each pair can be selected, so the mean's step is
   * not spent on directions whose two signs score alike. With an odd λ the last sample is unpaired.
   */
  mirrored?: boolean;
}

/** Options after defaults: every field set. */
export interface CmaSettings {
  x0: number[];
  sigma0: number;
  seed: number;
  popSize: number;
  tolFun: number;
  tolX: number;
  maxEvals: number;
  fTarget: number | null;
  diagonal: boolean;
  /** Absent = 1 (states written before the option). */
  cmean?: number;
  /** Absent = false (states written before the option). */
  mirrored?: boolean;
}

export interface CmaState {
  kind: "cma-es";
  version: 1;
  settings: CmaSettings;
  mean: number[];
  sigma: number;
  C: number[][];
  pc: number[];
  ps: number[];
  /** Eigen cache: C ≈ B diag(D²) Bᵀ as of `eigenEval` evaluations. */
  B: number[][];
  D: number[];
  eigenEval: number;
  generation: number;
  countEval: number;
  rng: RngState;
  pending: number[][] | null;
  best: { x: number[]; f: JsonNumber } | null;
  /** Best fitness of each of the most recent generations (for tolFun). */
  bestHistory: JsonNumber[];
  /** All fitness values of the last generation (for tolFun). */
  lastFitness: JsonNumber[];
}

/** Derived strategy constants (Hansen's Table 1). */
interface Constants {
  n: number;
  lambda: number;
  mu: number;
  weights: number[];
  mueff: number;
  cc: number;
  cs: number;
  c1: number;
  cmu: number;
  damps: number;
  chiN: number;
  historyLength: number;
}

export function defaultPopSize(n: number): number {
  return 4 + Math.floor(3 * Math.log(n));
}

function computeConstants(n: number, lambda: number, diagonal: boolean): Constants {
  const mu = Math.floor(lambda / 2);
  const raw: number[] = [];
  for (let i = 1; i <= mu; i++) raw.push(Math.log((lambda + 1) / 2) - Math.log(i));
  const sum = raw.reduce((s, w) => s + w, 0);
  const weights = raw.map((w) => w / sum);
  const mueff = 1 / weights.reduce((s, w) => s + w * w, 0);
  const cc = (4 + mueff / n) / (n + 4 + (2 * mueff) / n);
  const cs = (mueff + 2) / (n + mueff + 5);
  // sep-CMA-ES learns its n variances (n + 2)/3 times faster (Ros & Hansen 2008, eq. 8)
  const speed = diagonal ? (n + 2) / 3 : 1;
  const c1 = Math.min(1, (speed * 2) / ((n + 1.3) ** 2 + mueff));
  const cmu = Math.min(1 - c1, (speed * 2 * (mueff - 2 + 1 / mueff)) / ((n + 2) ** 2 + mueff));
  const damps = 1 + 2 * Math.max(0, Math.sqrt((mueff - 1) / (n + 1)) - 1) + cs;
  const chiN = Math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n));
  const historyLength = 10 + Math.ceil((30 * n) / lambda);
  return { n, lambda, mu, weights, mueff, cc, cs, c1, cmu, damps, chiN, historyLength };
}

function resolveSettings(opts: CmaOptions): CmaSettings {
  const n = Array.isArray(opts.x0) ? opts.x0.length : 0;
  if (n < 1 || !opts.x0.every(Number.isFinite)) {
    throw new ParamError("create cma-es x0: expected a non-empty array of finite numbers");
  }
  if (!(Number.isFinite(opts.sigma0) && opts.sigma0 > 0)) {
    throw new ParamError(`create cma-es sigma0 ${opts.sigma0}: must be a finite number > 0`);
  }
  const popSize = opts.popSize ?? defaultPopSize(n);
  if (!Number.isInteger(popSize) || popSize < 2) {
    throw new ParamError(`create cma-es popSize ${popSize}: must be an integer ≥ 2`);
  }
  const settings: CmaSettings = {
    x0: [...opts.x0],
    sigma0: opts.sigma0,
    seed: opts.seed,
    popSize,
    tolFun: opts.tolFun ?? 1e-11,
    tolX: opts.tolX ?? 1e-11,
    maxEvals: opts.maxEvals ?? Math.floor((1e3 * (n + 5) ** 2) / Math.sqrt(popSize)),
    fTarget: opts.fTarget ?? null,
    diagonal: opts.diagonal ?? false,
  };
  if (opts.cmean !== undefined) {
    if (!(opts.cmean > 0 && opts.cmean <= 1)) throw new ParamError(`create cma-es cmean ${opts.cmean}: must be in (0, 1]`);
    settings.cmean = opts.cmean;
  }
  if (opts.mirrored) settings.mirrored = true;
  return settings;
}

/**
 * Pairwise selection: the better of each mirrored pair (samples 2k, 2k + 1; an odd last sample is
 * its own pair), best first, then the worse ones. μ = ⌊λ/2⌋ ≤ the number of pairs, so only
 * pair winners are recombined.
 */
export function pairwiseOrder(fitness: number[]): number[] {
  const winners: number[] = [];
  const losers: number[] = [];
  for (let j = 0; j < fitness.length; j += 2) {
    if (j + 1 >= fitness.length) {
      winners.push(j);
      continue;
    }
    const firstWins = rankKey(fitness[j]) <= rankKey(fitness[j + 1]);
    winners.push(firstWins ? j : j + 1);
    losers.push(firstWins ? j + 1 : j);
  }
  const byFitness = (idx: number[]): number[] => {
    const sub = argsortFitness(idx.map((i) => fitness[i]));
    return sub.map((k) => idx[k]);
  };
  return [...byFitness(winners), ...byFitness(losers)];
}

function identity(n: number): number[][] {
  return Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
}

export class CmaEs implements SearchStrategy<CmaState> {
  private readonly settings: CmaSettings;
  private readonly k: Constants;
  private rng: Rng;
  private mean: number[];
  private sigmaValue: number;
  private C: number[][];
  private pc: number[];
  private ps: number[];
  private B: number[][];
  private D: number[];
  private eigenEval = 0;
  private gen = 0;
  private evals = 0;
  private pending: number[][] | null = null;
  private bestSoFar: { x: number[]; f: number } | null = null;
  private bestHistory: number[] = [];
  private lastFitness: number[] = [];

  constructor(opts: CmaOptions) {
    this.settings = resolveSettings(opts);
    const n = this.settings.x0.length;
    this.k = computeConstants(n, this.settings.popSize, this.settings.diagonal);
    this.rng = new Rng(this.settings.seed);
    this.mean = [...this.settings.x0];
    this.sigmaValue = this.settings.sigma0;
    this.C = identity(n);
    this.pc = new Array<number>(n).fill(0);
    this.ps = new Array<number>(n).fill(0);
    this.B = identity(n);
    this.D = new Array<number>(n).fill(1);
  }

  get generation(): number {
    return this.gen;
  }
  get countEval(): number {
    return this.evals;
  }
  get sigma(): number {
    return this.sigmaValue;
  }
  get popSize(): number {
    return this.k.lambda;
  }
  /** The distribution mean (pycma's `xfavorite`), often a better final answer than the best sample. */
  get distributionMean(): number[] {
    return [...this.mean];
  }

  ask(): number[][] {
    if (this.pending === null) {
      const { n, lambda } = this.k;
      const pop: number[][] = [];
      const mirrored = this.settings.mirrored === true;
      for (let j = 0; j < lambda; j++) {
        if (mirrored && j % 2 === 1) {
          // the mirror of the previous sample: m − σy
          const prev = pop[j - 1];
          pop.push(prev.map((v, i) => 2 * this.mean[i] - v));
          continue;
        }
        const dz = new Array<number>(n);
        for (let i = 0; i < n; i++) dz[i] = this.D[i] * this.rng.normal();
        const x = new Array<number>(n);
        for (let i = 0; i < n; i++) {
          let y = 0;
          if (this.settings.diagonal) y = dz[i];
          else for (let c = 0; c < n; c++) y += this.B[i][c] * dz[c];
          x[i] = this.mean[i] + this.sigmaValue * y;
        }
        pop.push(x);
      }
      this.pending = pop;
    }
    return this.pending.map((x) => [...x]);
  }

  tell(solutions: number[][], fitness: number[]): void {
    const { n, lambda, mu, weights, mueff, cc, cs, c1, cmu, damps, chiN } = this.k;
    if (solutions.length !== lambda || fitness.length !== lambda) {
      throw new ParamError(
        `tell cma-es generation ${this.gen}: expected ${lambda} solutions and ${lambda} fitness values, got ${solutions.length} and ${fitness.length}`,
      );
    }
    for (const x of solutions) {
      if (x.length !== n || !x.every(Number.isFinite)) {
        throw new ParamError(`tell cma-es generation ${this.gen}: every solution must hold ${n} finite numbers`);
      }
    }
    if (!fitness.every((f) => typeof f === "number")) {
      throw new ParamError(`tell cma-es generation ${this.gen}: fitness values must be numbers`);
    }

    const order = this.settings.mirrored ? pairwiseOrder(fitness) : argsortFitness(fitness);
    this.evals += lambda;

    // y_i = (x_i - m) / σ for the μ best, and their weighted mean
    const oldMean = this.mean;
    const ys: number[][] = [];
    const yw = new Array<number>(n).fill(0);
    for (let r = 0; r < mu; r++) {
      const x = solutions[order[r]];
      const y = new Array<number>(n);
      for (let i = 0; i < n; i++) {
        y[i] = (x[i] - oldMean[i]) / this.sigmaValue;
        yw[i] += weights[r] * y[i];
      }
      ys.push(y);
    }
    // c_m < 1 moves the mean part of the way; the paths below still take the whole step y_w (as pycma)
    const cm = this.settings.cmean ?? 1;
    this.mean = oldMean.map((m, i) => m + cm * this.sigmaValue * yw[i]);

    // step-size path: ps ← (1-cs) ps + sqrt(cs(2-cs)μeff) C^{-1/2} y_w, C^{-1/2} = B D⁻¹ Bᵀ
    const bty = new Array<number>(n);
    for (let c = 0; c < n; c++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += this.B[i][c] * yw[i];
      bty[c] = s / this.D[c];
    }
    const csFactor = Math.sqrt(cs * (2 - cs) * mueff);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let c = 0; c < n; c++) s += this.B[i][c] * bty[c];
      this.ps[i] = (1 - cs) * this.ps[i] + csFactor * s;
    }
    const psNorm = Math.sqrt(this.ps.reduce((s, v) => s + v * v, 0));
    const hsig = psNorm / Math.sqrt(1 - (1 - cs) ** (2 * (this.gen + 1))) / chiN < 1.4 + 2 / (n + 1);

    // covariance path and matrix: rank-one + rank-μ
    const ccFactor = Math.sqrt(cc * (2 - cc) * mueff);
    for (let i = 0; i < n; i++) this.pc[i] = (1 - cc) * this.pc[i] + (hsig ? ccFactor * yw[i] : 0);
    const deltaHsig = hsig ? 0 : cc * (2 - cc);
    const decay = 1 - c1 - cmu + c1 * deltaHsig; // Σw = 1
    for (let i = 0; i < n; i++) {
      for (let j = i; j < (this.settings.diagonal ? i + 1 : n); j++) {
        let rankMu = 0;
        for (let r = 0; r < mu; r++) rankMu += weights[r] * ys[r][i] * ys[r][j];
        const v = decay * this.C[i][j] + c1 * this.pc[i] * this.pc[j] + cmu * rankMu;
        this.C[i][j] = v;
        this.C[j][i] = v;
      }
    }

    this.sigmaValue *= Math.exp((cs / damps) * (psNorm / chiN - 1));

    if (this.settings.diagonal || this.evals - this.eigenEval > lambda / (c1 + cmu) / n / 10) this.updateEigen();

    // bookkeeping for best() and the stopping rules
    const bestIdx = order[0];
    const fBest = rankKey(fitness[bestIdx]);
    if (this.bestSoFar === null || fBest < this.bestSoFar.f) {
      this.bestSoFar = { x: [...solutions[bestIdx]], f: fBest };
    }
    this.bestHistory.push(fBest);
    if (this.bestHistory.length > this.k.historyLength) this.bestHistory.shift();
    this.lastFitness = fitness.map(rankKey);
    this.gen += 1;
    this.pending = null;
  }

  private updateEigen(): void {
    this.eigenEval = this.evals;
    if (this.settings.diagonal) {
      // C stays diagonal: its eigenvectors are the axes
      this.D = this.C.map((row, i) => Math.sqrt(Math.max(row[i], 1e-300)));
      return;
    }
    const { values, vectors } = symmetricEigen(this.C);
    this.B = vectors;
    // rounding can push a tiny eigenvalue below zero; keep D real and positive
    const floor = Math.max(values[values.length - 1] * 1e-20, 1e-300);
    this.D = values.map((v) => Math.sqrt(Math.max(v, floor)));
  }

  stop(): string[] {
    const reasons: string[] = [];
    const s = this.settings;
    if (this.evals >= s.maxEvals) reasons.push("maxEvals");
    if (s.fTarget !== null && this.bestSoFar !== null && this.bestSoFar.f <= s.fTarget) reasons.push("fTarget");
    if (this.gen >= 2) {
      const all = [...this.bestHistory, ...this.lastFitness];
      const range = Math.max(...all) - Math.min(...all);
      if (range < s.tolFun) reasons.push("tolFun");
    }
    const n = this.k.n;
    let small = true;
    for (let i = 0; i < n && small; i++) {
      small = this.sigmaValue * Math.abs(this.pc[i]) < s.tolX && this.sigmaValue * Math.sqrt(this.C[i][i]) < s.tolX;
    }
    if (small) reasons.push("tolX");
    const dMax = Math.max(...this.D);
    const dMin = Math.min(...this.D);
    if ((dMax / dMin) ** 2 > 1e14) reasons.push("conditionCov");
    return reasons;
  }

  best(): { x: number[]; f: number } | null {
    return this.bestSoFar === null ? null : { x: [...this.bestSoFar.x], f: this.bestSoFar.f };
  }

  state(): CmaState {
    return {
      kind: "cma-es",
      version: 1,
      settings: { ...this.settings, x0: [...this.settings.x0] },
      mean: [...this.mean],
      sigma: this.sigmaValue,
      C: this.C.map((r) => [...r]),
      pc: [...this.pc],
      ps: [...this.ps],
      B: this.B.map((r) => [...r]),
      D: [...this.D],
      eigenEval: this.eigenEval,
      generation: this.gen,
      countEval: this.evals,
      rng: this.rng.state(),
      pending: this.pending === null ? null : this.pending.map((x) => [...x]),
      best: this.bestSoFar === null ? null : { x: [...this.bestSoFar.x], f: encodeNumber(this.bestSoFar.f) },
      bestHistory: this.bestHistory.map(encodeNumber),
      lastFitness: this.lastFitness.map(encodeNumber),
    };
  }

  static fromState(state: CmaState): CmaEs {
    if (state?.kind !== "cma-es" || state.version !== 1) {
      throw new ParamError(`restore cma-es state: expected kind 'cma-es' version 1, got kind '${String(state?.kind)}' version ${String(state?.version)}`);
    }
    const st = state.settings;
    const es = new CmaEs({ ...st, fTarget: st.fTarget ?? undefined, diagonal: st.diagonal ?? false });
    const n = es.k.n;
    const vec = (v: unknown, what: string): number[] => {
      if (!Array.isArray(v) || v.length !== n || !v.every((e) => typeof e === "number")) {
        throw new ParamError(`restore cma-es state ${what}: expected ${n} numbers`);
      }
      return [...(v as number[])];
    };
    const mat = (m: unknown, what: string): number[][] => {
      if (!Array.isArray(m) || m.length !== n) throw new ParamError(`restore cma-es state ${what}: expected ${n}×${n} numbers`);
      return m.map((row: unknown) => vec(row, what));
    };
    es.mean = vec(state.mean, "mean");
    es.sigmaValue = state.sigma;
    es.C = mat(state.C, "C");
    es.pc = vec(state.pc, "pc");
    es.ps = vec(state.ps, "ps");
    es.B = mat(state.B, "B");
    es.D = vec(state.D, "D");
    es.eigenEval = state.eigenEval;
    es.gen = state.generation;
    es.evals = state.countEval;
    es.rng = Rng.fromState(state.rng);
    es.pending = state.pending === null ? null : state.pending.map((x) => vec(x, "pending"));
    es.bestSoFar = state.best === null ? null : { x: vec(state.best.x, "best.x"), f: decodeNumber(state.best.f) };
    es.bestHistory = state.bestHistory.map(decodeNumber);
    es.lastFitness = state.lastFitness.map(decodeNumber);
    return es;
  }
}
