/** Conversion between thrown errors and their wire form `{code, message, retryable}`. */
import { MergeloomError, errorMessage, type ErrorCode } from "./errors.js";
import type { WireError } from "./records.js";

/** Unknown (non-Mergeloom) errors become retryable MERGE_FAILED: a redelivery may help. */
export function toWireError(err: unknown): WireError {
  if (err instanceof MergeloomError) return { code: err.code, message: err.message, retryable: err.retryable };
  return { code: "MERGE_FAILED", message: errorMessage(err), retryable: true };
}

/** An error received from a peer, rethrown locally with the peer's code and retryability. */
export class RemoteError extends MergeloomError {
  constructor(wire: WireError) {
    super(wire.code as ErrorCode, wire.message, { retryable: wire.retryable });
  }
}

export function fromWireError(wire: WireError): MergeloomError {
  return new RemoteError(wire);
}
