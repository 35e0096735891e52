/**
 * The seam between the search loop and whatever scores candidates: in-process
 * (LocalCandidateEvaluator) or NATS workers (one task per candidate). An evaluator must be
 * idempotent per candidate — a redelivered task after a killed worker re-evaluates the same
 * merge and gets the same scores — and returns one result per candidate, in any order.
 */
export interface Candidate {
  /** Unique within a search, e.g. `g3-c7`. */
  id: string;
  genotype: number[];
  /** The candidate as a plain mergekit YAML config (what best.yml will hold). */
  mergeYaml: string;
}

export interface CandidateResult {
  id: string;
  /** Score per fitness task (higher is better); empty when the candidate failed. */
  scores: Record<string, number>;
  /** Combined score (weighted mean of `scores`, higher is better); NaN when the candidate failed. */
  fitness: number;
  /** Why the candidate failed (merge or evaluation error), when it did. */
  error?: string;
}

export interface CandidateEvaluator {
  evaluate(candidates: readonly Candidate[], signal?: AbortSignal): Promise<CandidateResult[]>;
  close(): Promise<void>;
}
