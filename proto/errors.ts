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

export class ProtocolError extends MergeloomError {
  constructor(message: string, code: ErrorCode = "PROTOCOL_MISMATCH") {
    super(code, message);
  }
}

/** Marks a failure that no redelivery can fix: the transport terminates the message. */
export function isPermanent(err: unknown): boolean {
  return err instanceof MergeloomError ? !err.retryable : false;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
