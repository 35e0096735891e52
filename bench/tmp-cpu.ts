// Temporary: CPU seconds per process during one 5000-task NATS job (worker process, concurrency from argv).
import { execSync } from "node:child_process";
import { connectNatsTransport } from "../proto/nats-transport.js";
import { startNatsServer } from "../test/harness/nats-server.js";
import { TransportDispatcher } from "../coordinator/dispatch/transport-dispatcher.js";
import { makeTinyTasks, startNoopWorkerProc } from "./nats-bench-harness.js";
const conc = Number(process.argv[2] ?? "1");
const server = await startNatsServer();
const w = await startNoopWorkerProc(server.url, "cpu", "w0", conc);
const coord = await connectNatsTransport({ servers: server.url, prefix: "cpu", role: "coordinator" });
const d = new TransportDispatcher(coord, { threads: 1 });
await d.runTasks(makeTinyTasks("warm", 300), () => {});
const cpu = () => Object.fromEntries(execSync(`ps -eo pid,cputimes,args`).toString().split("\n").filter((l) => /nats-server|noop-worker/.test(l) && !/ps -eo/.test(l)).map((l) => { const [pid, c, ...a] = l.trim().split(/\s+/); return [a.join(" ").includes("noop") ? "worker" : "nats-server", Number(c)]; }));
const c0 = cpu(); const u0 = process.cpuUsage(); const t0 = performance.now();
await d.runTasks(makeTinyTasks("j", 5000), () => {});
const secs = (performance.now() - t0) / 1000; const u = process.cpuUsage(u0); const c1 = cpu();
console.log(`conc ${conc}: ${(5000 / secs).toFixed(0)} tasks/s, wall ${secs.toFixed(2)} s; cpu s: coordinator ${((u.user + u.system) / 1e6).toFixed(2)}, worker ${c1.worker - c0.worker}, nats-server ${c1["nats-server"] - c0["nats-server"]}`);
await coord.close(); await w.stop(); await server.stop(); process.exit(0);
