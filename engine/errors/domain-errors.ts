/**
 * The engine's errors: a bad config, checkpoint, shape, parameter or storage access. Each carries
 * one of proto's error codes, which is all that crosses the wire (with message and retryable).
 */
import { MergeloomError, type ErrorCode } from "@mergeloom/proto/errors";

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
