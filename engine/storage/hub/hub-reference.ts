/**
 * Hugging Face Hub references as mergekit writes them (`org/name`, `org/name@revision`) and the
 * pinned form mergeloom carries in plans and task messages: `hf://org/name@<commit sha>[/file]`.
 * A pinned URI names exactly one set of bytes, so every worker reads the same model even when the
 * branch it came from moves during the job.
 */
import { ConfigError, StorageError } from "../../errors/index.js";

export interface HubReference {
  /** `org/name`. */
  repo: string;
  /** Branch, tag or commit as written; undefined = the default branch (`main`). */
  revision?: string;
}

export interface PinnedHubFile {
  repo: string;
  sha: string;
  /** Path inside the repository; undefined for the repository root. */
  file?: string;
}

/** The Hub's rules for repo ids: two parts of [A-Za-z0-9._-], no `--` or `..`, at most 96 chars each. */
const PART = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$/;
const REVISION = /^[A-Za-z0-9._/-]{1,255}$/;
export const COMMIT_SHA = /^[0-9a-f]{40}$/;
export const DEFAULT_REVISION = "main";

export function isHubRepoId(s: string): boolean {
  const parts = s.split("/");
  return parts.length === 2 && parts.every((p) => PART.test(p) && !p.includes("--") && !p.includes(".."));
}

/**
 * `org/name` or `org/name@revision` → a HubReference; undefined when the string cannot be a Hub
 * id (a path with more segments, `./x`, an absolute path, a URI). Local paths win over Hub ids,
 * but that needs the file system, so the caller checks it (resolveModelReference).
 */
export function parseHubReference(ref: string): HubReference | undefined {
  const at = ref.indexOf("@");
  const repo = at < 0 ? ref : ref.slice(0, at);
  if (!isHubRepoId(repo)) return undefined;
  if (at < 0) return { repo };
  const revision = ref.slice(at + 1);
  if (!REVISION.test(revision) || revision.split("/").some((s) => s === "" || s === "." || s === "..")) {
    throw new ConfigError("", `model reference '${ref}': revision '${revision}' is not a valid branch, tag or commit name`);
  }
  return { repo, revision };
}

export function isHubUri(uri: string): boolean {
  return uri.startsWith("hf://");
}

export function hubUri(repo: string, sha: string, file?: string): string {
  return `hf://${repo}@${sha}${file === undefined ? "" : `/${file}`}`;
}

/** Parses and validates a pinned URI (task messages come from the network: nothing may escape). */
export function parsePinnedHubUri(uri: string): PinnedHubFile {
  const m = /^hf:\/\/([^@]+)@([0-9a-f]{40})(?:\/(.+))?$/.exec(uri);
  if (!m || !isHubRepoId(m[1])) {
    throw new StorageError(`open ${uri}: not a pinned Hub URI; expected hf://org/name@<40-hex commit>/<file>`);
  }
  const file = m[3];
  if (file !== undefined) checkRepoFilePath(uri, file);
  return { repo: m[1], sha: m[2], file };
}

/** A path inside a repository: relative, `/`-separated, no `.`/`..`/empty segments, no NUL or backslash. */
export function checkRepoFilePath(what: string, file: string): void {
  if (file.includes("\\") || file.includes("\0") || file.startsWith("/") || file.split("/").some((s) => s === "" || s === "." || s === "..")) {
    throw new StorageError(`open ${what}: '${file}' is not a plain path inside the repository`);
  }
}
