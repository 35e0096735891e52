/** Renders merge events: a progress bar (tensors, bytes, rate, ETA) on a TTY, JSON lines with --json. */
import cliProgress from "cli-progress";
import type { MergeEvent, MergeEventSink } from "@mergeloom/engine/job";
import { capEchoes } from "@mergeloom/proto/cap-echoes";

/** Warnings echo config values too: capped like error messages. */
function capWarning(e: MergeEvent): MergeEvent {
  return e.type === "warning" ? { ...e, message: capEchoes(e.message) } : e;
}

export function formatBytes(n: number): string {
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(i ? 2 : 0)} ${u[i]}`;
}

/** `quiet` (mergekit-yaml's --quiet) draws no progress bar; warnings and the summary still print. */
export function createEventRenderer(opts: { json: boolean; quiet?: boolean; stream?: NodeJS.WriteStream }): { sink: MergeEventSink; stop(): void } {
  const stream = opts.stream ?? process.stderr;
  if (opts.json) {
    return { sink: (e: MergeEvent) => process.stdout.write(JSON.stringify({ ts: new Date().toISOString(), ...capWarning(e) }) + "\n"), stop() {} };
  }
  let bar: cliProgress.SingleBar | undefined;
  let bytesTotal = 0;
  let bytesDone = 0;
  let started = 0;
  const sink = (e: MergeEvent) => {
    switch (e.type) {
      case "plan":
        stream.write(
          `plan: ${e.tensors} tensors in ${e.tasks} tasks → ${e.shards} shard(s); read ${formatBytes(e.bytesToRead)}, write ${formatBytes(e.bytesToWrite)}, peak memory ≈ ${formatBytes(e.peakMemoryBytes)}\n`,
        );
        bytesTotal = e.bytesToWrite;
        started = performance.now();
        if (stream.isTTY && !opts.quiet) {
          bar = new cliProgress.SingleBar(
            { format: " {bar} {percentage}% | tasks {value}/{total} | {bytes} | {rate} | ETA {eta_formatted}", stream, hideCursor: true },
            cliProgress.Presets.shades_classic,
          );
          bar.start(e.tasks, 0, { bytes: "0 B", rate: "-" });
        }
        break;
      case "task": {
        if (bar) {
          const secs = (performance.now() - started) / 1000;
          bytesDone = (bytesTotal * e.done) / e.total;
          const net = e.networkBytes ? ` | net ${formatBytes(e.networkBytes)} ${formatBytes(e.networkBytes / Math.max(secs, 1e-3))}/s` : "";
          bar.update(e.done, {
            bytes: `${formatBytes(bytesDone)}/${formatBytes(bytesTotal)}`,
            rate: `${formatBytes(bytesDone / Math.max(secs, 1e-3))}/s${net}`,
          });
        }
        break;
      }
      case "assemble":
        bar?.stop();
        bar = undefined;
        break;
      case "done":
        bar?.stop();
        bar = undefined;
        stream.write(`merged ${e.tensors} tensors in ${e.seconds.toFixed(2)} s (read ${formatBytes(e.bytesRead)}, wrote ${formatBytes(e.bytesWritten)})\n`);
        break;
      case "warning":
        stream.write(`warning: ${capEchoes(e.message)}\n`);
        break;
      default:
        break;
    }
  };
  return { sink, stop: () => bar?.stop() };
}
