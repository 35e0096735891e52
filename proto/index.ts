// Public entry point of @mergeloom/proto: what other packages may import.
export { buckets } from "./buckets.js";
export type { KvOptions } from "./buckets.js";
export { capEchoes } from "./cap-echoes.js";
export { MAX_MESSAGE_BYTES, decodeMessage, encodeMessage, encodedMessageBytes } from "./codec.js";
export type { CodecOptions, PeerRole } from "./codec.js";
export { CONFIG_DTYPE_NAMES, DTYPE_BYTES, MERGEABLE_DTYPES, isDType, isFloatDType, isMergeableDType, numelOf, parseConfigDType, torchDTypeName } from "./dtype.js";
export type { DType, FloatDType } from "./dtype.js";
export { CheckpointError, ConfigError, MergeloomError, ParamError, PathEscapeError, ProtocolError, ShapeMismatchError, StorageError, UnknownMethodError, errorMessage, isPermanent } from "./errors.js";
export type { DefaultRow, LoraDelta, MergeTask, MergeTaskResult, ParamValue, RowMap, TensorInputSpec, TensorResult, TensorSource, TensorSpec, TensorTask, VocabSpec } from "./merge-task.js";
export type { EvalOutcome, EvalTask, FitnessSpec, FitnessTask, FitnessTaskKind, JobRecord, TaskOutcome, WireError, WorkerRecord } from "./records.js";
export type { AnyMessage, MessageKind, MessageMap } from "./schemas.js";
export { PROTOCOL_VERSION, SUBJECT_ROOT, consumers, headers, streams, subjects } from "./subjects.js";
export { inSpan, mergeloomTracer } from "./tracing/in-span.js";
export { ATTR_BYTES_READ, ATTR_BYTES_WRITTEN, ATTR_DELIVERY_ATTEMPT, ATTR_JOB_ID, ATTR_MERGE_METHOD, ATTR_MESSAGING_CONSUMER_GROUP, ATTR_MESSAGING_DESTINATION, ATTR_MESSAGING_MESSAGE_ID, ATTR_MESSAGING_OPERATION_TYPE, ATTR_MESSAGING_SYSTEM, ATTR_TASK_COUNT, ATTR_TASK_ID, ATTR_TENSOR_COUNT, ATTR_WORKER_NAME, SPAN_NAMES } from "./tracing/span-attributes.js";
export { extractTraceContext, injectTraceHeaders } from "./tracing/trace-headers.js";
export { fromWireError, toWireError } from "./wire-error.js";
