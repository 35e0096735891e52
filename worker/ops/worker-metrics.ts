import { Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * The worker's Prometheus metrics. Each instance owns its Registry so that tests and several
 * workers in one process never collide on prom-client's global registry.
 */
export class WorkerMetrics {
  readonly registry: Registry;
  private readonly done: Counter;
  private readonly failed: Counter;
  private readonly redelivered: Counter;
  private readonly bytesRead: Counter;
  private readonly bytesWritten: Counter;
  private readonly duration: Histogram;
  private readonly current: Gauge;

  constructor(opts: { labels?: Record<string, string> } = {}) {
    this.registry = new Registry();
    if (opts.labels) this.registry.setDefaultLabels(opts.labels);
    const registers = [this.registry];
    this.done = new Counter({ name: "mergeloom_worker_tasks_done_total", help: "Tasks completed and acknowledged.", registers });
    this.failed = new Counter({ name: "mergeloom_worker_tasks_failed_total", help: "Tasks that ended in an error (retried or terminated).", registers });
    this.redelivered = new Counter({
      name: "mergeloom_worker_tasks_redelivered_total",
      help: "Tasks received on a delivery attempt after the first.",
      registers,
    });
    this.bytesRead = new Counter({ name: "mergeloom_worker_bytes_read_total", help: "Tensor bytes read from storage.", registers });
    this.bytesWritten = new Counter({ name: "mergeloom_worker_bytes_written_total", help: "Tensor bytes written to storage.", registers });
    // Tasks range from a small norm tensor (ms) to a 70B embedding shard (minutes).
    this.duration = new Histogram({
      name: "mergeloom_worker_task_duration_seconds",
      help: "Wall time of completed tasks.",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers,
    });
    this.current = new Gauge({ name: "mergeloom_worker_current_tasks", help: "Tasks being processed now.", registers });
  }

  /** A task was received; `attempt` is the 1-based delivery count. */
  taskStarted(attempt: number): void {
    this.current.inc();
    if (attempt > 1) this.redelivered.inc();
  }

  taskFinished(durationMs: number, bytesRead: number, bytesWritten: number): void {
    this.current.dec();
    this.done.inc();
    this.duration.observe(durationMs / 1000);
    if (bytesRead > 0) this.bytesRead.inc(bytesRead);
    if (bytesWritten > 0) this.bytesWritten.inc(bytesWritten);
  }

  taskFailed(): void {
    this.current.dec();
    this.failed.inc();
  }

  /** Prometheus text exposition format. */
  metricsText(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
