/** `--http-timeout` and `--http-retries`: how patiently http(s) and Hub inputs are read (merge, plan, worker, download). */
import type { Command } from "commander";
import { MergeloomError } from "@mergeloom/proto/errors";
import { DEFAULT_HTTP_RETRIES, DEFAULT_HTTP_TIMEOUT_MS, type HttpOptions } from "@mergeloom/engine/storage";
import { useHubHttpOptions } from "@mergeloom/engine/storage";
import { parseIntFlag } from "./parse-size.js";

export interface HttpFlags {
  httpTimeout?: string;
  httpRetries?: string;
}

export function addHttpOptions(cmd: Command): Command {
  return cmd
    .option(
      "--http-timeout <seconds>",
      `http(s) and Hub inputs: a request fails as stalled when this many seconds bring neither a response nor 64 KiB (or the rest of its range) (default ${DEFAULT_HTTP_TIMEOUT_MS / 1000})`,
    )
    .option(
      "--http-retries <n>",
      `http(s) and Hub inputs: retries after a failed or stalled request, with exponential backoff and jitter (default ${DEFAULT_HTTP_RETRIES})`,
    );
}

export function httpOptionsFrom(flags: HttpFlags): HttpOptions {
  const out: HttpOptions = {};
  if (flags.httpTimeout !== undefined) {
    const s = Number(flags.httpTimeout);
    if (!Number.isFinite(s) || s <= 0 || s > 86_400)
      throw new MergeloomError("USAGE", `--http-timeout: '${flags.httpTimeout}' is not a number of seconds in (0, 86400]`);
    out.timeoutMs = Math.round(s * 1000);
  }
  if (flags.httpRetries !== undefined) out.retries = parseIntFlag(flags.httpRetries, "--http-retries", 0);
  // The same patience for the Hub: this process's revision, header, file and range requests (merge threads get `out` itself).
  useHubHttpOptions(out);
  return out;
}
