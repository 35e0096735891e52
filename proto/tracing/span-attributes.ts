/**
 * Span names and attribute keys shared by the coordinator and workers. Span names are
 * low-cardinality (one per stage); ids and sizes go in attributes so backends can group by stage
 * and still filter by job or task.
 */

/** Instrumentation scope of every mergeloom span. */
export const TRACER_NAME = "mergeloom";

/** Stage span names. */
export const SPAN_NAMES = {
  /** Root span of one merge job on the coordinator. */
  jobMerge: "job merge",
  plan: "plan",
  dispatch: "dispatch",
  assemble: "assemble",
  evaluate: "evaluate",
  /** Per task on the worker. */
  load: "load",
  merge: "merge",
  write: "write",
} as const;

export const ATTR_JOB_ID = "mergeloom.job.id";
export const ATTR_TASK_ID = "mergeloom.task.id";
export const ATTR_TENSOR_COUNT = "mergeloom.tensor.count";
export const ATTR_BYTES_READ = "mergeloom.bytes.read";
export const ATTR_BYTES_WRITTEN = "mergeloom.bytes.written";
export const ATTR_WORKER_NAME = "mergeloom.worker.name";
export const ATTR_MERGE_METHOD = "mergeloom.merge.method";
export const ATTR_TASK_COUNT = "mergeloom.task.count";

/** Semantic-convention keys (messaging, errors). */
export const ATTR_DELIVERY_ATTEMPT = "messaging.delivery.attempt";
export const ATTR_MESSAGING_SYSTEM = "messaging.system";
export const ATTR_MESSAGING_OPERATION_TYPE = "messaging.operation.type";
export const ATTR_MESSAGING_DESTINATION = "messaging.destination.name";
export const ATTR_MESSAGING_CONSUMER_GROUP = "messaging.consumer.group.name";
export const ATTR_MESSAGING_MESSAGE_ID = "messaging.message.id";
export const ATTR_ERROR_TYPE = "error.type";
