/**
 * The embedded default: the same coordinator → transport → worker path as a cluster, with the
 * in-memory transport and one in-process worker that owns the merge threads.
 */
import { MemoryBroker, MemoryTransport } from "@mergeloom/transport";
import { MergeWorker } from "@mergeloom/worker";
import { LocalMergeExecutor } from "@mergeloom/engine/driver";
import { TransportDispatcher } from "./transport-dispatcher.js";
import { traced } from "@mergeloom/transport";
import type { Transport } from "@mergeloom/transport";
import type { MergeEventSink } from "@mergeloom/engine/job";
import type { HttpOptions } from "@mergeloom/engine/storage";

export class EmbeddedDispatcher extends TransportDispatcher {
  private constructor(
    transport: Transport,
    private readonly worker: MergeWorker,
    threads: number,
    onEvent?: MergeEventSink,
  ) {
    super(transport, { threads, onEvent, noWorkerWarnMs: 60_000 });
  }

  /** In-process messages have no payload limit: a merge of thousands of models is not split or refused for message size. */
  override readonly maxMessageBytes: number = Infinity;

  /** Two tasks in flight keep every merge thread busy across task boundaries (a one-tensor embedding task would leave the others idle). */
  static async start(opts: { threads?: number; onEvent?: MergeEventSink; http?: HttpOptions } = {}): Promise<EmbeddedDispatcher> {
    const broker = new MemoryBroker();
    const executor = new LocalMergeExecutor({ threads: opts.threads, http: opts.http });
    const worker = new MergeWorker({
      transport: traced(new MemoryTransport({ broker, role: "worker", maxMessageBytes: Infinity })),
      name: "embedded",
      executor,
      ackWaitMs: 600_000,
      maxDeliver: 1,
      concurrency: 2,
    });
    await worker.start();
    return new EmbeddedDispatcher(
      traced(new MemoryTransport({ broker, role: "coordinator", maxMessageBytes: Infinity })),
      worker,
      executor.threads,
      opts.onEvent,
    );
  }

  async close(): Promise<void> {
    await this.worker.stop({ graceful: false });
    await this.transport.close();
  }
}
