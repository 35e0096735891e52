/**
 * The plug-in fitness: run a user command (lm-eval-harness, a vLLM script, ...) on a candidate
 * checkpoint and read its score from stdout. The last line of stdout that parses as JSON wins,
 * so tools that log before printing their result work unchanged.
 */
import { spawn } from "node:child_process";
import { MergeloomError } from "../../../proto/errors.js";

export interface CommandScoreOptions {
  /** Field to read when the JSON value is an object (default "score"). */
  key?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
}

export function runScoreCommand(command: string, checkpoint: string, opts: CommandScoreOptions = {}): Promise<number> {
  const cmd = command.split("{checkpoint}").join(shellQuote(checkpoint));
  return new Promise((resolve, reject) => {
    const child = spawn("sh", ["-c", cmd], {
      env: { ...process.env, MERGELOOM_CHECKPOINT: checkpoint },
      stdio: ["ignore", "pipe", "pipe"],
      signal: opts.signal,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs) : undefined;
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new MergeloomError("EVAL_FAILED", `run fitness command '${command}': ${err.message}`, { cause: err, retryable: true }));
    });
    child.on("close", (code, sig) => {
      clearTimeout(timer);
      if (code !== 0) {
        const tail = stderr.trim().split("\n").slice(-3).join(" | ");
        reject(new MergeloomError("EVAL_FAILED", `run fitness command '${command}': exited with ${code ?? sig}${tail ? ` (stderr: ${tail})` : ""}`));
        return;
      }
      try {
        resolve(parseScore(stdout, opts.key ?? "score"));
      } catch (err) {
        reject(new MergeloomError("EVAL_FAILED", `run fitness command '${command}': ${(err as Error).message}`, { cause: err }));
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
