/**
 * The one candidate pipeline of a search, used by every evaluator (in-process, layer-path, eval
 * worker): parse → plan → merge in memory → score on the graph tasks, then the disk tasks
 * (command, scorer) on the candidate written as `mergeloom merge` would write it. Each evaluator
 * brings only what differs: where sessions come from, where checkpoints go, what is allowed.
 */
import { join } from "node:path";
import { MergeloomError } from "@mergeloom/proto/errors";
import type { MergePlan } from "../plan/build-plan.js";
import type { CandidateMerger } from "./candidate-merger.js";
import type { CheckpointScratch } from "./checkpoint-scratch.js";
import { runScoreCommand } from "./fitness/command-fitness.js";
import { isGraphTask, type FitnessTask } from "./fitness/fitness-spec.js";
import { runScorerTask, type Scorers } from "./fitness/scorers.js";
import { loadWeightsF32 } from "./load-weights.js";
import type { WeightMap } from "./onnx-evaluator.js";
import { writeCandidateCheckpoint } from "./write-candidate-checkpoint.js";

export interface CandidateToScore {
  id: string;
  mergeYaml: string;
  /** Seed of the merge (DARE masks), as `mergeloom merge --random-seed`. */
  seed: number;
}

export interface ScoreCandidateOptions {
  tasks: readonly FitnessTask[];
  /** Scores the merged weights on the graph tasks (accuracy, likelihood, entropy); called only when there are some. */
  scoreWeights: (weights: WeightMap, plan: MergePlan) => Promise<Record<string, number>>;
  /** Checks the plan before anything is read (e.g. that every input lies under the storage roots). */
  checkPlan?: (plan: MergePlan) => Promise<void>;
  /** Where the checkpoint for command and scorer tasks is written. */
  scratch?: CheckpointScratch;
  /** Score the graph tasks on the written checkpoint read back, instead of the in-memory merge (benchmarks). */
  viaDisk?: boolean;
  /** Named scorers for `kind: scorer` tasks. */
  scorers?: Scorers;
  /** GPU given to scorers as CUDA_VISIBLE_DEVICES. */
  gpu?: string;
  signal?: AbortSignal;
}

/** The score per task name; throws on any failure (the caller decides whether that ranks the candidate last or retries). */
export async function scoreCandidate(merger: CandidateMerger, candidate: CandidateToScore, opts: ScoreCandidateOptions): Promise<Record<string, number>> {
  const { signal } = opts;
  const what = `candidate ${candidate.id}`;
  const config = merger.parse(candidate.mergeYaml, what);
  const plan = await merger.plan(config);
  await opts.checkPlan?.(plan);
  signal?.throwIfAborted();
  const graphTasks = opts.tasks.some(isGraphTask);
  const diskTasks = opts.tasks.filter((t) => t.kind === "command" || t.kind === "scorer");
  const scores: Record<string, number> = {};
  const scoreGraph = async (weights: WeightMap) => Object.assign(scores, await opts.scoreWeights(weights, plan));
  if (graphTasks && !opts.viaDisk) {
    const weights = await merger.merge(plan, candidate.seed);
    signal?.throwIfAborted();
    await scoreGraph(weights);
  }
  if (diskTasks.length === 0 && !(graphTasks && opts.viaDisk)) return scores;
  if (!opts.scratch) throw new MergeloomError("EVAL_FAILED", `evaluate ${what}: command and scorer tasks need a scratch directory for the checkpoint`);
  await opts.scratch.use(plan.bytesToWrite, `evaluate ${what}`, async (dir) => {
    const checkpoint = join(dir, "model");
    await writeCandidateCheckpoint(config, checkpoint, candidate.seed);
    if (graphTasks && opts.viaDisk) await scoreGraph(await loadWeightsF32(checkpoint));
    for (const t of diskTasks) {
      signal?.throwIfAborted();
      scores[t.name] =
        t.kind === "command"
          ? await runScoreCommand(t.command!, checkpoint, { key: t.key, signal })
          : await runScorerTask(t, opts.scorers ?? new Map(), checkpoint, { signal, gpu: opts.gpu });
    }
  });
  return scores;
}
