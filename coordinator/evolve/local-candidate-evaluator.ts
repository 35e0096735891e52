/**
 * Scores candidates in this process through the engine's candidate pipeline (scoreCandidate): the
 * same parse → plan → merge numerics as `mergeloom merge` (in memory, rounded to the output dtype),
 * and the weights go straight into the ONNX graph. Command and scorer tasks get the candidate
 * written to a temporary checkpoint.
 *
 * `workers` evaluation slots run candidates concurrently, each with its own ONNX session (the
 * merge itself runs on the main thread; inference runs on onnxruntime's threads).
 */
import { MergeloomError } from "@mergeloom/proto/errors";
import { inSpan, SPAN_NAMES } from "@mergeloom/proto/tracing";
import { CandidateMerger, isGraphTask, OnnxFitness, scoreCandidate, scorersUsed, tempScratch, type FitnessSpec, type Scorers } from "@mergeloom/engine/eval";
import type { MergeConfig } from "@mergeloom/engine/config";
import type { MergedTensor } from "@mergeloom/engine/driver";
import type { Candidate, CandidateEvaluator, CandidateResult } from "./candidate-evaluator.js";
import { candidateResult } from "./candidate-result.js";

export interface LocalEvaluatorOptions {
  fitness: FitnessSpec;
  /** Seed of the merges (DARE masks), as `mergeloom merge --random-seed`. */
  mergeSeed?: number;
  /** Concurrent evaluation slots (default 1). */
  workers?: number;
  /** Write every candidate to disk and read it back instead of merging in memory (benchmarks). */
  viaDisk?: boolean;
  /** Named scorers for `kind: scorer` tasks (`mergeloom evolve --scorer NAME=COMMAND`). */
  scorers?: Scorers;
  /** GPU given to scorers as CUDA_VISIBLE_DEVICES. */
  gpu?: string;
}

interface Slot {
  fitness?: OnnxFitness;
}

export class LocalCandidateEvaluator implements CandidateEvaluator {
  private readonly merger = new CandidateMerger();
  private readonly scratch = tempScratch("mergeloom-candidate-");

  private constructor(
    private readonly opts: LocalEvaluatorOptions,
    private readonly slots: Slot[],
  ) {}

  static async create(opts: LocalEvaluatorOptions): Promise<LocalCandidateEvaluator> {
    const n = Math.max(1, opts.workers ?? 1);
    const missing = scorersUsed(opts.fitness.tasks).filter((s) => !opts.scorers?.has(s));
    if (missing.length) {
      throw new MergeloomError(
        "USAGE",
        `evolve: the fitness uses scorer ${missing.join(", ")}, which this process does not have; pass --scorer ${missing[0]}=COMMAND (or --scorers-file), or run with --nats on workers that have it`,
      );
    }
    const needsGraph = opts.fitness.tasks.some(isGraphTask);
    const slots: Slot[] = [];
    for (let i = 0; i < n; i++) slots.push({ fitness: needsGraph ? await OnnxFitness.create(opts.fitness, { slots: n }) : undefined });
    return new LocalCandidateEvaluator(opts, slots);
  }

  async evaluate(candidates: readonly Candidate[], signal?: AbortSignal): Promise<CandidateResult[]> {
    const results = new Array<CandidateResult>(candidates.length);
    let next = 0;
    await Promise.all(
      this.slots.map(async (slot) => {
        while (next < candidates.length) {
          signal?.throwIfAborted();
          const i = next++;
          const c = candidates[i];
          results[i] = await inSpan(SPAN_NAMES.evaluate, { "mergeloom.candidate.id": c.id }, async (span) => {
            const r = await this.evaluateOne(c, slot, signal);
            span.setAttribute("mergeloom.fitness", r.fitness);
            return r;
          });
        }
      }),
    );
    return results;
  }

  private evaluateOne(c: Candidate, slot: Slot, signal?: AbortSignal): Promise<CandidateResult> {
    const { fitness, mergeSeed, viaDisk, scorers, gpu } = this.opts;
    return candidateResult(c, fitness.tasks, signal, () =>
      scoreCandidate(
        this.merger,
        { id: c.id, mergeYaml: c.mergeYaml, seed: mergeSeed ?? 0 },
        { tasks: fitness.tasks, scoreWeights: (w) => slot.fitness!.score(w), scratch: this.scratch, viaDisk, scorers, gpu, signal },
      ),
    );
  }

  /** The merged weights, as `mergeloom merge` would write them, read back as fp32. */
  async mergeInMemory(config: MergeConfig): Promise<Map<string, MergedTensor>> {
    return this.merger.merge(await this.merger.plan(config), this.opts.mergeSeed ?? 0);
  }

  async close(): Promise<void> {
    for (const s of this.slots) await s.fitness?.release();
    this.merger.close();
  }
}
