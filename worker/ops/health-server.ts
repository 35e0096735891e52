import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { MergeloomError, errorMessage } from "@mergeloom/proto/errors";
import type { WorkerMetrics } from "./worker-metrics.js";

export interface HealthServerOptions {
  port: number;
  /** Defaults to all interfaces: the kubelet and Prometheus reach the pod IP. */
  host?: string;
  metrics: WorkerMetrics;
  /** True while the worker should receive tasks (connected, consumer bound, not draining). */
  ready: () => boolean;
  /** False once the process is wedged and should be restarted; defaults to always live. */
  live?: () => boolean;
}

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

/** Serves /healthz (liveness), /readyz (readiness) and /metrics (Prometheus text) over plain HTTP. */
export async function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  const live = opts.live ?? (() => true);
  const server = createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => reply(res, 500, `error: ${errorMessage(err)}\n`));
  });
  // Probes must not keep a draining worker alive past its grace period.
  server.keepAliveTimeout = 1000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") return reply(res, 405, "method not allowed\n", { allow: "GET, HEAD" });
    switch (path) {
      case "/healthz":
        return live() ? reply(res, 200, "ok\n") : reply(res, 503, "not live\n");
      case "/readyz":
        return opts.ready() ? reply(res, 200, "ready\n") : reply(res, 503, "not ready\n");
      case "/metrics":
        return reply(res, 200, await opts.metrics.metricsText(), { "content-type": opts.metrics.contentType });
      default:
        return reply(res, 404, "not found (paths: /healthz, /readyz, /metrics)\n");
    }
  }

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) =>
      reject(
        new MergeloomError("USAGE", `start health server on port ${opts.port}: ${err.message}; choose a free port with --http-port`, {
          cause: err,
        }),
      );
    server.once("error", onError);
    server.listen(opts.port, opts.host, () => {
      server.off("error", onError);
      resolve();
    });
  });

  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function reply(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...headers });
  res.end(res.req.method === "HEAD" ? undefined : body);
}
