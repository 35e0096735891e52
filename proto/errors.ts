/**
 * Typed errors with stable codes. Messages read `<operation> <subject>: <defect>` and, where a
 * choice was wrong, list the valid ones. `retryable` tells the transport whether a redelivery can
 * help (a missing file will still be missing; a dropped connection may not be).
 */
import { capEchoes } from "./cap-echoes.js";

export const ERROR_CODES = [
  "CONFIG_INVALID",
  "CHECKPOINT_INVALID",
  "CHECKPOINT_MISSING",
  "SHAPE_MISMATCH",
  "UNKNOWN_METHOD",
  "PARAM_INVALID",
  "MERGE_FAILED",
  "PROTOCOL_MISMATCH",
  "MESSAGE_INVALID",
  "PATH_ESCAPE",
  "STORAGE_FAILED",
  "TRANSPORT_FAILED",
  "NO_WORKERS",
  "JOB_FAILED",
  "CANCELLED",
  "EVAL_FAILED",
  "OUTPUT_EXISTS",
  "OUTPUT_UNSAFE",
  "OUTPUT_LOCKED",
  "USAGE",
] as const;

/** Every code an error may carry; this list is the only one (schemas validate wire errors against it). */
export type ErrorCode = (typeof ERROR_CODES)[number];

export class MergeloomError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  constructor(code: ErrorCode, message: string, opts: { cause?: unknown; retryable?: boolean } = {}) {
    // Config values echoed into messages are capped here, once for every error (see cap-echoes.ts).
    super(capEchoes(message), opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = opts.retryable ?? false;
  }
}

/** A mergekit YAML or search config that does not validate; `path` is the field path (`slices[0].sources[1].layer_range`). */
export class ConfigError extends MergeloomError {
  readonly path: string;
  constructor(path: string, message: string, opts: { cause?: unknown } = {}) {
    super("CONFIG_INVALID", path ? `config ${path}: ${message}` : `config: ${message}`, opts);
    this.path = path;
  }
}

/** A checkpoint file or index that is malformed, truncated or inconsistent. */
export class CheckpointError extends MergeloomError {
  readonly file: string;
  constructor(file: string, message: string, opts: { cause?: unknown; code?: ErrorCode } = {}) {
    super(opts.code ?? "CHECKPOINT_INVALID", `read checkpoint ${file}: ${message}`, opts);
    this.file = file;
  }
}

export class ShapeMismatchError extends MergeloomError {
  constructor(message: string) {
    super("SHAPE_MISMATCH", message);
  }
}

export class UnknownMethodError extends MergeloomError {
  constructor(name: string, known: readonly string[]) {
    super("UNKNOWN_METHOD", `config merge_method: unknown merge method '${name}' (known: ${known.join(", ")})`);
  }
}

export class ParamError extends MergeloomError {
  constructor(message: string) {
    super("PARAM_INVALID", message);
  }
}

export class ProtocolError extends MergeloomError {
  constructor(message: string, code: ErrorCode = "PROTOCOL_MISMATCH") {
    super(code, message);
  }
}

export class PathEscapeError extends MergeloomError {
  constructor(path: string, roots: readonly string[]) {
    super("PATH_ESCAPE", `open ${path}: path is outside the storage roots (${roots.join(", ") || "none configured"}); add its directory with --storage-root`);
  }
}

export class StorageError extends MergeloomError {
  constructor(message: string, opts: { cause?: unknown; retryable?: boolean } = {}) {
    super("STORAGE_FAILED", message, opts);
  }
}

/** Marks a failure that no redelivery can fix: the transport terminates the message. */
export function isPermanent(err: unknown): boolean {
  return err instanceof MergeloomError ? !err.retryable : false;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
