/**
 * The plug-in fitness: run a user command (lm-eval-harness, a vLLM script, ...) on a candidate
 * checkpoint and read its score from stdout. The last line of stdout that parses as JSON wins,
 * so tools that log before printing their result work unchanged.
 */
import { spawn } from "node:child_process";
import { MergeloomError } from "@mergeloom/proto/errors";

export interface CommandScoreOptions {
  /** Field to read when the JSON value is an object (default "score"). */
  key?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Extra environment (e.g. CUDA_VISIBLE_DEVICES of a worker's GPU). */
  env?: Record<string, string>;
  /** How the command is named in errors (default: the command text). */
  label?: string;
}

/** Characters of stdout / stderr kept for error messages. */
const TAIL = 2000;

/** The last lines of a stream, on one line, for an error message. */
function tailOf(s: string): string {
  return s.trim().split("\n").slice(-5).join(" | ").slice(-600);
}

export function runScoreCommand(command: string, checkpoint: string, opts: CommandScoreOptions = {}): Promise<number> {
  const cmd = command.split("{checkpoint}").join(shellQuote(checkpoint));
  const label = opts.label ?? `fitness command '${command}'`;
  return new Promise((resolve, reject) => {
    const child = spawn("sh", ["-c", cmd], {
      env: { ...process.env, ...opts.env, MERGELOOM_CHECKPOINT: checkpoint },
      stdio: ["ignore", "pipe", "pipe"],
      signal: opts.signal,
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    // stdout is kept whole up to 1 MB (the score is its last JSON line); stderr only as a tail
    child.stdout.on("data", (d: Buffer) => (stdout = (stdout + d.toString()).slice(-1_000_000)));
    child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-TAIL)));
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill("SIGKILL");
        }, opts.timeoutMs)
      : undefined;
    const tails = () => [stdout.trim() && `stdout: ${tailOf(stdout.slice(-TAIL))}`, stderr.trim() && `stderr: ${tailOf(stderr)}`].filter(Boolean).join("; ");
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new MergeloomError("EVAL_FAILED", `run ${label}: ${err.message}`, { cause: err, retryable: true }));
    });
    child.on("close", (code, sig) => {
      clearTimeout(timer);
      if (timedOut) {
        const t = tails();
        reject(new MergeloomError("EVAL_FAILED", `run ${label}: timed out after ${opts.timeoutMs! / 1000} s and was killed${t ? ` (${t})` : ""}`));
        return;
      }
      if (code !== 0) {
        const t = tails();
        reject(new MergeloomError("EVAL_FAILED", `run ${label}: exited with ${code ?? sig}${t ? ` (${t})` : ""}`));
        return;
      }
      try {
        resolve(parseScore(stdout, opts.key ?? "score"));
      } catch (err) {
        const t = tails();
        reject(new MergeloomError("EVAL_FAILED", `run ${label}: ${(err as Error).message}${t ? ` (${t})` : ""}`, { cause: err }));
      }
    });
  });
}

/** The score in a command's stdout: the last JSON line, a number or an object with `key`. */
export function parseScore(stdout: string, key: string): number {
  const lines = stdout.trim().split("\n").reverse();
  for (const line of lines) {
    let v: unknown;
    try {
      v = JSON.parse(line.trim());
    } catch {
      continue;
    }
    if (typeof v === "number" && Number.isFinite(v)) return v;
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      const s = (v as Record<string, unknown>)[key];
      if (typeof s === "number" && Number.isFinite(s)) return s;
      throw new MergeloomError("EVAL_FAILED", `stdout JSON has no numeric field '${key}' (fields: ${Object.keys(v).join(", ")})`);
    }
  }
  throw new MergeloomError("EVAL_FAILED", `no JSON score in stdout; print a number or {"${key}": <number>} as the last JSON line`);
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
