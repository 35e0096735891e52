/**
 * Scores candidates in this process: each mergeYaml goes through the same parse → plan → merge
 * numerics as `mergeloom merge` (in memory, rounded to the output dtype), and the weights go
 * straight into the ONNX graph. Command tasks get the candidate written to a temporary checkpoint.
 *
 * `workers` evaluation slots run candidates concurrently, each with its own ONNX session (the
 * merge itself runs on the main thread; inference runs on onnxruntime's threads).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { errorMessage, MergeloomError } from "@mergeloom/proto";
import { runScorerTask, scorersUsed, type Scorers } from "@mergeloom/engine/eval";
import { writeCandidateCheckpoint } from "@mergeloom/worker";
import { createDefaultRegistry } from "@mergeloom/engine/methods";
import { InMemoryMerger, type MergedTensor } from "@mergeloom/engine/driver";
import type { MergeMethodRegistry } from "@mergeloom/engine/methods";
import { TensorIO } from "@mergeloom/engine/driver";
import { createRemoteReader } from "@mergeloom/engine/driver";
import { runScoreCommand } from "@mergeloom/engine/eval";
import { combineScores, type FitnessSpec } from "@mergeloom/engine/eval";
import { OnnxFitness } from "@mergeloom/engine/eval";
import { parseMergeConfig } from "@mergeloom/engine/config";
import type { MergeConfig } from "@mergeloom/engine/config";
import { loadWeightsF32 } from "@mergeloom/engine/eval";
import { buildPlan } from "@mergeloom/engine/plan";
import type { Candidate, CandidateEvaluator, CandidateResult } from "./candidate-evaluator.js";
import { inSpan, SPAN_NAMES } from "@mergeloom/proto";
import { CheckpointCache } from "@mergeloom/engine/storage";

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
  private readonly checkpoints = new CheckpointCache();
  private readonly registry: MergeMethodRegistry = createDefaultRegistry();
  private readonly io = new TensorIO(createRemoteReader());
  private readonly merger = new InMemoryMerger(this.registry, this.io);

  private constructor(
    private readonly opts: LocalEvaluatorOptions,
    private readonly slots: Slot[],
  ) {}

  static async create(opts: LocalEvaluatorOptions): Promise<LocalCandidateEvaluator> {
    const n = Math.max(1, opts.workers ?? 1);
    const missing = scorersUsed(opts.fitness.tasks).filter((s) => !opts.scorers?.has(s));
    if (missing.length) {
      throw new MergeloomError("USAGE", `evolve: the fitness uses scorer ${missing.join(", ")}, which this process does not have; pass --scorer ${missing[0]}=COMMAND (or --scorers-file), or run with --nats on workers that have it`);
    }
    const needsGraph = opts.fitness.tasks.some((t) => t.kind === "accuracy" || t.kind === "entropy");
    // Split the cores between the slots unless the spec pins the thread count.
    const threads = opts.fitness.threads ?? (n > 1 ? Math.max(1, Math.floor(availableParallelism() / n)) : undefined);
    const slots: Slot[] = [];
    for (let i = 0; i < n; i++) slots.push({ fitness: needsGraph ? await OnnxFitness.create({ ...opts.fitness, threads }) : undefined });
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

  private async evaluateOne(c: Candidate, slot: Slot, signal?: AbortSignal): Promise<CandidateResult> {
    const tasks = this.opts.fitness.tasks;
    let dir: string | undefined;
    try {
      const config = parseMergeConfig(c.mergeYaml, `candidate ${c.id}`, this.registry);
      const scores: Record<string, number> = {};
      const needsDisk = this.opts.viaDisk || tasks.some((t) => t.kind === "command" || t.kind === "scorer");
      if (needsDisk) {
        dir = await mkdtemp(join(tmpdir(), "mergeloom-candidate-"));
        await this.writeCheckpoint(config, join(dir, "model"));
      }
      if (slot.fitness) {
        const weights = this.opts.viaDisk ? await loadWeightsF32(join(dir!, "model")) : await this.mergeInMemory(config);
        Object.assign(scores, await slot.fitness.score(weights));
      }
      for (const t of tasks) {
        if (t.kind === "command") scores[t.name] = await runScoreCommand(t.command!, join(dir!, "model"), { key: t.key, signal });
        if (t.kind === "scorer") scores[t.name] = await runScorerTask(t, this.opts.scorers!, join(dir!, "model"), { signal, gpu: this.opts.gpu });
      }
      return { id: c.id, scores, fitness: combineScores(scores, tasks) };
    } catch (err) {
      if (signal?.aborted) throw err;
      return { id: c.id, scores: {}, fitness: NaN, error: errorMessage(err) };
    } finally {
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  }

  /** The merged weights, as `mergeloom merge` would write them, read back as fp32. */
  async mergeInMemory(config: MergeConfig): Promise<Map<string, MergedTensor>> {
    const plan = await buildPlan(config, { registry: this.registry, open: (ref) => this.checkpoints.open(ref) });
    return this.merger.mergeAll(plan.tensors, this.opts.mergeSeed ?? 0);
  }

  private async writeCheckpoint(config: MergeConfig, out: string): Promise<void> {
    await writeCandidateCheckpoint(config, out, this.opts.mergeSeed ?? 0);
  }

  async close(): Promise<void> {
    for (const s of this.slots) await s.fitness?.release();
    this.io.close();
    this.merger.clear();
  }
}
