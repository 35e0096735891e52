// @mergeloom/proto: the wire contract between coordinator and workers — all of it is public.
export * from "./subjects.js";
export * from "./buckets.js";
export * from "./merge-task.js";
export * from "./records.js";
export * from "./schemas.js";
export * from "./codec.js";
export * from "./dtype.js";
export * from "./errors.js";
export * from "./wire-error.js";
export * from "./cap-echoes.js";
export * from "./tracing/trace-headers.js";
// in-span re-exports span-attributes
export * from "./tracing/in-span.js";
