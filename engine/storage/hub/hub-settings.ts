/**
 * Where the Hub is and how to talk to it, from the standard Hugging Face environment variables
 * (the same names and precedence as huggingface_hub's constants.py), so mergeloom shares the
 * cache and the login with Python tools. The token is held here and only ever sent as a header.
 */
import { readFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_HTTP_RETRIES, DEFAULT_HTTP_TIMEOUT_MS } from "../http-retry.js";

export interface HubSettings {
  /** `HF_ENDPOINT`, without a trailing slash (default https://huggingface.co). */
  endpoint: string;
  /** `HF_TOKEN`, else the file at `HF_TOKEN_PATH`, else `HF_HOME/token` (huggingface-cli login). */
  token?: string;
  /** The hub cache: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`. */
  cacheDir: string;
  /** `HF_HUB_OFFLINE=1`: resolve and read from the cache only. */
  offline: boolean;
  /**
   * Bounded local cache of tensor byte ranges read over the network (worker `--cache-dir`;
   * default `<tmp>/mergeloom-hub-ranges`). Streamed merges of big tensors read their inputs once
   * per pass; with this cache only the first pass crosses the network.
   */
  rangeCacheDir?: string;
  /** Its size limit in bytes (worker `--cache-size`, default 8 GB; 0 turns the cache off). */
  rangeCacheBytes?: number;
  /**
   * Keep every range read in it (worker `--cache-dir`: evolve re-reads the same tensors job after
   * job), rather than only the blocks of a tensor still being read that memory could not hold.
   */
  rangeCacheAll?: boolean;
  /** Range requests in flight per process (or merge thread). */
  concurrency: number;
  /** Memory for tensor blocks read and read ahead, per process or merge thread (MERGELOOM_HUB_MEMORY, default 512 MiB). */
  memoryBytes: number;
  /** Extra attempts after the first for 429/5xx/resets (--http-retries). */
  retries: number;
  /** First backoff; doubled per attempt, with full jitter. */
  retryDelayMs: number;
  /** Stall window of one request (--http-timeout; see http-stall-watch.ts). */
  timeoutMs: number;
}

export const DEFAULT_ENDPOINT = "https://huggingface.co";
export const DEFAULT_RANGE_CACHE_BYTES = 8e9;
export const DEFAULT_HUB_MEMORY_BYTES = 512 << 20;

function truthy(v: string | undefined): boolean {
  return v !== undefined && ["1", "ON", "YES", "TRUE"].includes(v.toUpperCase());
}

/** Reads the environment once (entry points, and worker threads which inherit it). */
export function hubSettingsFromEnv(env: NodeJS.ProcessEnv): HubSettings {
  const home = env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "huggingface");
  const cacheDir = env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE ?? join(home, "hub");
  let token = env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN;
  if (!token) {
    try {
      token = readFileSync(env.HF_TOKEN_PATH ?? join(home, "token"), "utf8").trim() || undefined;
    } catch {
      token = undefined; // no login: public repos only
    }
  }
  const num = (v: string | undefined, d: number) => (v !== undefined && Number.isFinite(Number(v)) && v !== "" ? Number(v) : d);
  return {
    endpoint: (env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, ""),
    token: token?.trim() || undefined,
    cacheDir,
    offline: truthy(env.HF_HUB_OFFLINE) || truthy(env.TRANSFORMERS_OFFLINE),
    rangeCacheDir: env.MERGELOOM_RANGE_CACHE_DIR || join(tmpdir(), "mergeloom-hub-ranges"),
    rangeCacheBytes: num(env.MERGELOOM_RANGE_CACHE_SIZE, DEFAULT_RANGE_CACHE_BYTES),
    rangeCacheAll: truthy(env.MERGELOOM_RANGE_CACHE_ALL),
    concurrency: num(env.MERGELOOM_HUB_CONCURRENCY, 16),
    memoryBytes: num(env.MERGELOOM_HUB_MEMORY, DEFAULT_HUB_MEMORY_BYTES),
    retries: num(env.MERGELOOM_HUB_RETRIES, DEFAULT_HTTP_RETRIES),
    retryDelayMs: num(env.MERGELOOM_HUB_RETRY_DELAY_MS, 250),
    timeoutMs: num(env.MERGELOOM_HUB_TIMEOUT_MS, DEFAULT_HTTP_TIMEOUT_MS),
  };
}

let current: HubSettings | undefined;

/** The process's settings: set by the entry point, else read from the environment on first use. */
export function hubSettings(): HubSettings {
  return (current ??= hubSettingsFromEnv(process.env));
}

/** Entry points and tests replace the process's settings (e.g. after parsing --cache-dir). */
export function configureHub(settings: HubSettings | undefined): void {
  current = settings;
}
