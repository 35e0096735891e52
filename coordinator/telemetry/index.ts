// Public entry point of @mergeloom/coordinator/telemetry: what other packages may import.
export type { SpanLine } from "./json-file-span-exporter.js";
export { startTelemetry } from "./start-telemetry.js";
