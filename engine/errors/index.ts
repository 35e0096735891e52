// Public entry point of @mergeloom/engine/errors: what other packages may import.
export { CheckpointError, ConfigError, ParamError, PathEscapeError, ShapeMismatchError, StorageError, UnknownMethodError } from "./domain-errors.js";
