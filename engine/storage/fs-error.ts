/** Maps Node filesystem errors to typed errors: what a retry cannot fix is permanent. */
import { MergeloomError } from "@mergeloom/proto/errors";
import { CheckpointError, StorageError } from "../errors/index.js";

const PERMANENT = new Set(["EACCES", "EPERM", "EISDIR", "ENOTDIR", "ELOOP", "ENAMETOOLONG", "EROFS", "ENOSPC", "EDQUOT"]);

export function fsError(operation: string, path: string, err: unknown): MergeloomError {
  if (err instanceof MergeloomError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === "ENOENT") {
    return new CheckpointError(path, "file does not exist; check the path", { cause: err, code: "CHECKPOINT_MISSING" });
  }
  const detail = fsErrorDetail(err);
  return new StorageError(`${operation} ${path}: ${detail}`, { cause: err, retryable: !code || !PERMANENT.has(code) });
}

/** The errno detail for a message that already names the path; ENOSPC says what to do. */
export function fsErrorDetail(err: unknown): string {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === "ENOSPC" || code === "EDQUOT") return `no space left on the device (${code}); free space there or write the output to another filesystem`;
  return err instanceof Error ? err.message : String(err);
}
