/** Turns an in-process scoring of one candidate into its CandidateResult. */
import { errorMessage } from "@mergeloom/proto/errors";
import { combineScores, type FitnessTask } from "@mergeloom/engine/eval";
import type { Candidate, CandidateResult } from "./candidate-evaluator.js";

/**
 * The scores and their combined fitness; a failed candidate gets NaN and the reason (the search
 * ranks it last and goes on), unless the search itself was stopped.
 */
export async function candidateResult(
  c: Candidate,
  tasks: readonly FitnessTask[],
  signal: AbortSignal | undefined,
  score: () => Promise<Record<string, number>>,
): Promise<CandidateResult> {
  try {
    const scores = await score();
    return { id: c.id, scores, fitness: combineScores(scores, tasks) };
  } catch (err) {
    if (signal?.aborted) throw err;
    return { id: c.id, scores: {}, fitness: NaN, error: errorMessage(err) };
  }
}
