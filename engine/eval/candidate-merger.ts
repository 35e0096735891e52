/**
 * Parse → plan → in-memory merge of candidate YAMLs, with the numerics of `mergeloom merge`
 * (rounded to the output dtype). It keeps what a search reuses across hundreds of candidates of
 * the same few models: opened checkpoint headers and decoded inputs.
 */
import type { MergeConfig } from "../config/merge-config.js";
import { parseMergeConfig } from "../config/parse-merge-config.js";
import { InMemoryMerger, type MergedTensor } from "../driver/merge-in-memory.js";
import { createRemoteReader } from "../driver/remote-reader.js";
import { TensorIO } from "../driver/tensor-io.js";
import { createDefaultRegistry } from "../methods/all-methods.js";
import type { MergeMethodRegistry } from "../methods/merge-method-registry.js";
import { buildPlan, type MergePlan } from "../plan/build-plan.js";
import { CheckpointCache } from "../storage/checkpoint-cache.js";

export interface CandidateMergerOptions {
  /** Candidates may read models only under these directories. */
  storageRoots?: readonly string[];
  /** Clear the decoded-input cache before a merge when it holds more than this many bytes (default: never). */
  maxCacheBytes?: number;
}

export class CandidateMerger {
  readonly registry: MergeMethodRegistry = createDefaultRegistry();
  private readonly checkpoints: CheckpointCache;
  private readonly io = new TensorIO(createRemoteReader());
  private readonly merger = new InMemoryMerger(this.registry, this.io);

  constructor(private readonly opts: CandidateMergerOptions = {}) {
    this.checkpoints = new CheckpointCache(opts.storageRoots ? { storageRoots: opts.storageRoots } : {});
  }

  /** `what` names the YAML in errors (`candidate c3`). */
  parse(mergeYaml: string, what: string): MergeConfig {
    return parseMergeConfig(mergeYaml, what, this.registry);
  }

  plan(config: MergeConfig): Promise<MergePlan> {
    // a recipe whose density gene clamps to 0 leaves a model out: a point of the search space to score
    return buildPlan(config, {
      registry: this.registry,
      storageRoots: this.opts.storageRoots,
      open: (ref) => this.checkpoints.open(ref),
      droppedModels: "warn",
    });
  }

  /** Every floating-point output tensor of the plan, as fp32 rounded to its output dtype. */
  merge(plan: MergePlan, seed: number): Promise<Map<string, MergedTensor>> {
    if (this.merger.cacheBytes > (this.opts.maxCacheBytes ?? Infinity)) this.merger.clear();
    return this.merger.mergeAll(plan.tensors, seed);
  }

  close(): void {
    this.io.close();
    this.merger.clear();
  }
}
