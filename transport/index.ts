// Public entry point of @mergeloom/transport: what other packages may import.
export { MemoryBroker, MemoryTransport } from "./memory-transport.js";
export { NatsTransport, connectNatsTransport } from "./nats-transport.js";
export type { NatsConnectOptions } from "./nats-transport.js";
export { redactUrls } from "./nats-url.js";
export { openKv } from "./open-kv.js";
export { traced } from "./traced-transport.js";
export { KvConflictError } from "./transport-errors.js";
export type { KvOptions } from "./transport.js";
export type { AbandonedTask, Delivery, KvBucket, KvChange, KvEntry, Received, Stoppable, Transport } from "./transport.js";
