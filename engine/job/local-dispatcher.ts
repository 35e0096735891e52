/** Runs tasks in this process on a thread pool: the embedded default when no --nats is given. */
import type { MergeTask, MergeTaskResult } from "@mergeloom/proto/merge-task";
import { LocalMergeExecutor } from "../driver/run-merge-task.js";
import type { TaskDispatcher } from "./run-merge-job.js";

export class LocalDispatcher implements TaskDispatcher {
  private readonly executor: LocalMergeExecutor;
  readonly threads: number;
  readonly maxMessageBytes = Infinity;
  constructor(opts: { threads?: number } = {}) {
    this.executor = new LocalMergeExecutor(opts);
    this.threads = this.executor.threads;
  }
  async runTasks(tasks: readonly MergeTask[], onResult: (r: MergeTaskResult) => void, signal?: AbortSignal): Promise<void> {
    await Promise.all(tasks.map(async (t) => onResult(await this.executor.run(t, { signal }))));
  }
  close(): Promise<void> {
    return this.executor.close();
  }
}
