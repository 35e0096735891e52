/**
 * The thread pool's load balancer: an idle thread first, else one merging a single job, which
 * takes a second (up to `perThread` jobs). The queued job fetches its remote inputs while the
 * first merges (tensor-thread.ts), so Hub merges do not stall a round trip at each job start.
 *
 * Why not piscina's own: it never gives a thread running an abortable job a second one, because
 * aborting a running job terminates its thread. Ours are all abortable (the merge's signal); the
 * executor resubmits a job whose thread was terminated for another job's abort (run-merge-task.ts).
 */
export interface ThreadLoad {
  /** Jobs the thread holds; piscina reports Infinity for a thread holding one abortable job. */
  readonly currentUsage: number;
  /** True when the thread holds exactly one job, an abortable one. */
  readonly isRunningAbortableTask: boolean;
}

export function pickThread<W extends ThreadLoad>(workers: readonly W[], perThread: number): W | null {
  let second: W | null = null;
  for (const w of workers) {
    if (w.currentUsage === 0) return w;
    const held = heldBy(w);
    if (held < perThread && (second === null || held < heldBy(second))) second = w;
  }
  return second;
}

const heldBy = (w: ThreadLoad): number => (w.isRunningAbortableTask ? 1 : w.currentUsage);
