/**
 * Worker-side scorers: named commands a worker (or a local search) is started with —
 * `--scorer NAME=COMMAND`, `--scorers-file FILE`, or the Helm chart's `worker.scorers` values —
 * that score a candidate checkpoint. A search config names a scorer (`kind: scorer, scorer:
 * NAME`); the queue carries only that name, never a command, so publishing a task can only
 * select among commands the worker's operator configured.
 *
 * A scorer runs as `sh -c COMMAND` with `{checkpoint}` replaced by the (quoted) checkpoint path,
 * also in $MERGELOOM_CHECKPOINT, and CUDA_VISIBLE_DEVICES set to the worker's GPU when it has
 * one. Its last JSON line on stdout is the score (see command-fitness.ts).
 */
import { readFile } from "node:fs/promises";
import { parse } from "yaml";
import { MergeloomError } from "@mergeloom/proto/errors";
import { runScoreCommand } from "./command-fitness.js";

export interface ScorerSpec {
  name: string;
  command: string;
  /** Kill the scorer after this long (default 3600 s). */
  timeoutMs: number;
}

export type Scorers = ReadonlyMap<string, ScorerSpec>;

export const DEFAULT_SCORER_TIMEOUT_MS = 3600_000;
const NAME = /^[A-Za-z0-9_-]{1,64}$/;

function checkName(name: string, where: string): string {
  if (!NAME.test(name)) {
    throw new MergeloomError(
      "USAGE",
      `${where}: scorer name '${name}' may only use letters, digits, '_' and '-' (at most 64), because it names a queue subject`,
    );
  }
  return name;
}

/** `NAME=COMMAND` (the first '=' splits). */
export function parseScorerFlag(v: string, timeoutMs = DEFAULT_SCORER_TIMEOUT_MS): ScorerSpec {
  const i = v.indexOf("=");
  if (i <= 0 || i === v.length - 1)
    throw new MergeloomError("USAGE", `--scorer '${v}': expected NAME=COMMAND, e.g. --scorer lm="python score.py {checkpoint}"`);
  return { name: checkName(v.slice(0, i), "--scorer"), command: v.slice(i + 1), timeoutMs };
}

/**
 * A scorers file (YAML or JSON): `scorers: {NAME: COMMAND | {command: COMMAND, timeout: SECONDS}}`
 * — the shape the Helm chart renders from `worker.scorers`.
 */
export async function loadScorersFile(file: string): Promise<ScorerSpec[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new MergeloomError("USAGE", `read scorers file ${file}: ${(err as Error).message}`, { cause: err });
  }
  return parseScorersDocument(text, file);
}

export function parseScorersDocument(text: string, file: string): ScorerSpec[] {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new MergeloomError("USAGE", `parse scorers file ${file}: ${(err as Error).message}`, { cause: err });
  }
  const obj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
  if (!obj(doc) || !obj(doc.scorers))
    throw new MergeloomError("USAGE", `scorers file ${file}: expected a mapping 'scorers: {NAME: COMMAND or {command, timeout}}'`);
  const out: ScorerSpec[] = [];
  for (const [name, v] of Object.entries(doc.scorers)) {
    const where = `scorers file ${file}: scorers.${name}`;
    checkName(name, `scorers file ${file}`);
    if (typeof v === "string" && v) out.push({ name, command: v, timeoutMs: DEFAULT_SCORER_TIMEOUT_MS });
    else if (obj(v) && typeof v.command === "string" && v.command) {
      const extra = Object.keys(v).filter((k) => k !== "command" && k !== "timeout");
      if (extra.length) throw new MergeloomError("USAGE", `${where}.${extra[0]}: unknown key (valid: command, timeout)`);
      if (v.timeout !== undefined && !(typeof v.timeout === "number" && v.timeout > 0))
        throw new MergeloomError("USAGE", `${where}.timeout: expected seconds > 0, got ${JSON.stringify(v.timeout)}`);
      out.push({ name, command: v.command, timeoutMs: v.timeout === undefined ? DEFAULT_SCORER_TIMEOUT_MS : (v.timeout as number) * 1000 });
    } else throw new MergeloomError("USAGE", `${where}: expected a command string or {command, timeout}`);
  }
  return out;
}

/** Flags and file merged into one map; a name given twice is an error. */
export function scorerMap(...lists: ScorerSpec[][]): Map<string, ScorerSpec> {
  const m = new Map<string, ScorerSpec>();
  for (const s of lists.flat()) {
    if (m.has(s.name)) throw new MergeloomError("USAGE", `scorer '${s.name}' is defined twice (--scorer / --scorers-file); keep one`);
    m.set(s.name, s);
  }
  return m;
}

export interface RunScorerOptions {
  signal?: AbortSignal;
  /** The GPU this process owns: passed to the scorer as CUDA_VISIBLE_DEVICES. */
  gpu?: string;
}

/** Runs fitness task `task` (kind scorer) with this process's scorer of that name on `checkpoint`. */
export async function runScorerTask(
  task: { name: string; scorer?: string; key?: string },
  scorers: Scorers,
  checkpoint: string,
  opts: RunScorerOptions = {},
): Promise<number> {
  const s = scorers.get(task.scorer ?? "");
  if (!s) {
    const have = [...scorers.keys()];
    throw new MergeloomError(
      "EVAL_FAILED",
      `score task '${task.name}': this process has no scorer '${task.scorer}' (has: ${have.length ? have.join(", ") : "none"}); start it with --scorer ${task.scorer}=COMMAND`,
    );
  }
  return runScoreCommand(s.command, checkpoint, {
    key: task.key,
    signal: opts.signal,
    timeoutMs: s.timeoutMs,
    env: opts.gpu !== undefined ? { CUDA_VISIBLE_DEVICES: opts.gpu } : undefined,
    label: `scorer '${s.name}' for task '${task.name}'`,
  });
}

/** The scorer names a fitness spec's tasks use, sorted and without repeats. */
export function scorersUsed(tasks: readonly { kind: string; scorer?: string }[]): string[] {
  return [...new Set(tasks.filter((t) => t.kind === "scorer").map((t) => t.scorer!))].sort();
}
