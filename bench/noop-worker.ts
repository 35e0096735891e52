/**
 * A merge worker process with the no-op executor, for bench/dispatch-overhead.ts: the real
 * MergeWorker over the real NATS transport, doing no merge work.
 *
 *   node bench/dist/noop-worker.js --nats URL --prefix P [--name N] [--concurrency C]
 */
import { MergeWorker } from "@mergeloom/worker";
import { connectBenchTransport, NoopExecutor, parseFlag } from "./nats-bench-harness.js";

const argv = process.argv.slice(2);
const transport = await connectBenchTransport(parseFlag(argv, "--nats") ?? "nats://127.0.0.1:4222", parseFlag(argv, "--prefix") ?? "", "worker");
const worker = new MergeWorker({
  transport,
  name: parseFlag(argv, "--name") ?? `noop-${process.pid}`,
  concurrency: Number(parseFlag(argv, "--concurrency") ?? "1"),
  executor: new NoopExecutor(),
  maxDeliver: 1,
});
await worker.start();
console.log(`noop worker ${worker.name} ready`);
const stop = async () => {
  await worker.stop({ graceful: false });
  await transport.close();
  process.exit(0);
};
process.once("SIGTERM", () => void stop());
process.once("SIGINT", () => void stop());
