/**
 * Writes a candidate merge to a checkpoint directory exactly as `mergeloom merge` would (config,
 * tokenizer, shards), for scorers that load a model from disk. In-process, no merge threads: a
 * candidate is small next to what a scorer then does with it.
 */
import type { MergeConfig } from "../config/merge-config.js";
import { LocalDispatcher } from "../job/local-dispatcher.js";
import { runMergeJob } from "../job/run-merge-job.js";

export async function writeCandidateCheckpoint(config: MergeConfig, out: string, seed: number): Promise<void> {
  const dispatcher = new LocalDispatcher({ threads: 0 });
  try {
    await runMergeJob(config, dispatcher, { out, seed, maxShardBytes: 5_000_000_000 });
  } finally {
    await dispatcher.close();
  }
}
