/**
 * OpenTelemetry SDK setup for entry points (coordinator CLI, worker). Library code only uses
 * `@opentelemetry/api`; this registers what makes those calls real:
 * - a NodeTracerProvider with the AsyncLocalStorage context manager (context flows across awaits)
 *   and the W3C trace-context + baggage propagator (trace context in NATS headers);
 * - OTLP/HTTP export (JSON over HTTP, what exporter-trace-otlp-http 0.208 sends) through a
 *   BatchSpanProcessor when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is) or
 *   OTEL_EXPORTER_OTLP_ENDPOINT (+ `/v1/traces`) is set, or OTEL_TRACES_EXPORTER names `otlp`
 *   (then the default http://localhost:4318); OTEL_TRACES_EXPORTER=none turns it off;
 * - a JSON-lines file (`traceFile`) written as each span ends, so a killed process loses nothing.
 * OTEL_SDK_DISABLED=true, or no exporter configured, registers nothing (no overhead).
 *
 * Read from `env` (default process.env): the variables above, OTEL_EXPORTER_OTLP[_TRACES]_HEADERS,
 * OTEL_SERVICE_NAME (beats `serviceName`), OTEL_RESOURCE_ATTRIBUTES, OTEL_LOG_LEVEL. Read by the
 * SDK itself from process.env only: TLS files, compression, timeouts, OTEL_BSP_*, OTEL_TRACES_SAMPLER.
 */
import { context, diag, DiagConsoleLogger, DiagLogLevel, propagation, trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider, SimpleSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-node";
import { MergeloomError } from "@mergeloom/proto/errors";
import { JsonFileSpanExporter } from "./json-file-span-exporter.js";

export interface TelemetryOptions {
  /** service.name unless OTEL_SERVICE_NAME is set ("mergeloom-coordinator", "mergeloom-worker"). */
  serviceName: string;
  /** Append finished spans to this file as JSON lines. */
  traceFile?: string;
  /** Environment to read OTEL_* from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface Telemetry {
  /** False when nothing was registered (disabled or no exporter configured). */
  readonly enabled: boolean;
  /** Exports pending spans, closes exporters and unregisters the SDK globals; idempotent. */
  shutdown(): Promise<void>;
}

const DISABLED: Telemetry = { enabled: false, shutdown: async () => {} };

let active = false;

export async function startTelemetry(opts: TelemetryOptions): Promise<Telemetry> {
  const env = opts.env ?? process.env;
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return DISABLED;
  const otlp = otlpConfig(env);
  if (!otlp && !opts.traceFile) return DISABLED;
  if (active) {
    throw new MergeloomError(
      "USAGE",
      "start telemetry: the OpenTelemetry SDK is already started in this process; call shutdown() on the first handle before starting another",
    );
  }

  const processors: SpanProcessor[] = [];
  if (opts.traceFile) processors.push(new SimpleSpanProcessor(new JsonFileSpanExporter(opts.traceFile)));
  if (otlp) processors.push(new BatchSpanProcessor(new OTLPTraceExporter(otlp)));
  const logLevel = diagLevel(env.OTEL_LOG_LEVEL);
  if (logLevel !== DiagLogLevel.NONE) diag.setLogger(new DiagConsoleLogger(), logLevel);
  const protocol = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? "").trim();
  if (otlp && protocol && protocol !== "http/json") {
    // The installed exporter speaks OTLP/HTTP with JSON bodies only; collectors accept it on :4318.
    diag.warn(`OTEL_EXPORTER_OTLP_PROTOCOL=${protocol} is not supported; sending http/json to ${otlp.url}`);
  }

  const resource = defaultResource()
    .merge(resourceFromAttributes({ "service.name": opts.serviceName, "process.pid": process.pid }))
    .merge(resourceFromAttributes(parseKeyValues(env.OTEL_RESOURCE_ATTRIBUTES)))
    .merge(env.OTEL_SERVICE_NAME ? resourceFromAttributes({ "service.name": env.OTEL_SERVICE_NAME }) : null);

  const provider = new NodeTracerProvider({ resource, spanProcessors: processors });
  // Defaults: AsyncLocalStorageContextManager and W3C trace-context + baggage propagators.
  provider.register();
  active = true;

  let stopping: Promise<void> | undefined;
  return {
    enabled: true,
    shutdown: () =>
      (stopping ??= (async () => {
        try {
          await provider.shutdown();
        } finally {
          trace.disable();
          context.disable();
          propagation.disable();
          diag.disable();
          active = false;
        }
      })()),
  };
}

type OtlpConfig = NonNullable<ConstructorParameters<typeof OTLPTraceExporter>[0]>;

/** The exporter's URL and headers from `env`, or null when OTLP export is not configured. */
export function otlpConfig(env: NodeJS.ProcessEnv): OtlpConfig | null {
  const exporters = (env.OTEL_TRACES_EXPORTER ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  if (exporters.includes("none")) return null;
  const specific = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  const general = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  let url: string;
  if (specific) url = specific;
  else if (general) url = `${general.replace(/\/+$/, "")}/v1/traces`;
  else if (exporters.includes("otlp")) url = "http://localhost:4318/v1/traces";
  else return null;
  const headers = { ...parseKeyValues(env.OTEL_EXPORTER_OTLP_HEADERS), ...parseKeyValues(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS) };
  return { url, headers };
}

/** `k1=v1,k2=v2` with percent-encoded keys/values (the OTEL_* list format); malformed pairs are skipped. */
export function parseKeyValues(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (raw ?? "").split(",")) {
    const eq = pair.indexOf("=");
    if (eq <= 0) continue;
    try {
      const key = decodeURIComponent(pair.slice(0, eq).trim());
      if (key) out[key] = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch {
      // A bad percent escape: skip the pair rather than refuse to start.
    }
  }
  return out;
}

/** OTEL_LOG_LEVEL → diag level; default ERROR so failed exports are reported on stderr. */
function diagLevel(raw: string | undefined): DiagLogLevel {
  const name = raw?.trim().toUpperCase();
  if (name && name in DiagLogLevel && Number.isNaN(Number(name))) return DiagLogLevel[name as keyof typeof DiagLogLevel];
  return DiagLogLevel.ERROR;
}
