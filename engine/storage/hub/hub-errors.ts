/** One-line errors for Hub answers that no retry fixes, naming the repo, revision and file. */
import { type MergeloomError } from "@mergeloom/proto/errors";
import { CheckpointError, StorageError } from "../../errors/index.js";

export interface HubRequestSubject {
  repo: string;
  revision: string;
  file?: string;
}

export type HubMissing = "repo" | "revision" | "file";

/** A 404 from the Hub, saying which part of the reference is missing. */
export class HubMissingError extends CheckpointError {
  constructor(
    file: string,
    message: string,
    readonly missing: HubMissing,
  ) {
    super(file, message, { code: "CHECKPOINT_MISSING" });
  }
}

function subject(s: HubRequestSubject): string {
  return `${s.repo}@${s.revision}${s.file ? `/${s.file}` : ""}`;
}

/**
 * 401/403: private or gated repos; 404: repo, revision or file missing (the Hub says which in
 * X-Error-Code). The token itself never appears in a message.
 */
export function hubHttpError(s: HubRequestSubject, status: number, errorCode: string | null, endpoint: string): MergeloomError {
  const what = subject(s);
  const page = `${endpoint}/${s.repo}`;
  if (status === 401) {
    return new StorageError(
      `read hub ${what}: the Hub answered 401 Unauthorized: the repository is private or gated and no valid token was sent; set HF_TOKEN (or run \`huggingface-cli login\`) with a token that can read it`,
    );
  }
  if (status === 403) {
    return new StorageError(
      `read hub ${what}: the Hub answered 403 Forbidden: this is a gated repository your token may not read; accept its license at ${page} with the token's account, then retry with HF_TOKEN set`,
    );
  }
  if (status === 404 || status === 410) {
    const code = errorCode ?? "";
    const missing: HubMissing = code === "RevisionNotFound" ? "revision" : code === "EntryNotFound" || (s.file && code !== "RepoNotFound") ? "file" : "repo";
    const defect =
      missing === "revision"
        ? `revision '${s.revision}' does not exist in ${s.repo}; check the branch, tag or commit`
        : missing === "file"
          ? `file '${s.file}' does not exist in ${s.repo} at revision '${s.revision}'`
          : `repository ${s.repo} does not exist (or is private: set HF_TOKEN); check the model id`;
    return new HubMissingError(`hub ${what}`, `the Hub answered ${status}: ${defect}`, missing);
  }
  const transient = status === 408 || status === 429 || status >= 500;
  return new StorageError(`read hub ${what}: the Hub answered ${status}`, { retryable: transient });
}
