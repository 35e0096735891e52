/**
 * One stage of a multi-stage search (a hybrid's PS or DFS phase, a coarse-to-fine stage): its own
 * evaluator and validator, resumed when its directory already holds a state, evaluators closed
 * however it ends.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { CandidateEvaluator } from "./candidate-evaluator.js";
import { runEvolve, type EvolveEvent, type EvolveResult } from "./run-evolve.js";
import type { SearchConfig } from "./search-config.js";

export interface EvolveStage {
  config: SearchConfig;
  out: string;
  /** The config text recorded with the stage's outputs. */
  sourceText: string;
  evaluator: CandidateEvaluator;
  validator?: CandidateEvaluator;
  resume?: boolean;
  signal?: AbortSignal;
  onEvent?: (e: EvolveEvent) => void;
}

export async function runEvolveStage(s: EvolveStage): Promise<EvolveResult> {
  try {
    return await runEvolve({
      config: s.config,
      sourceText: s.sourceText,
      out: s.out,
      evaluator: s.evaluator,
      validator: s.validator,
      resume: s.resume && (await exists(join(s.out, "state.json"))),
      signal: s.signal,
      onEvent: s.onEvent,
    });
  } finally {
    await s.evaluator.close();
    await s.validator?.close();
  }
}

export async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}
