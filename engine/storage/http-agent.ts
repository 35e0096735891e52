/**
 * The process's (or thread's) HTTP connection pool for storage reads: an undici Agent, which keeps
 * one keep-alive Pool per origin. Range reads to the Hub and its storage host reuse warm
 * connections instead of paying a TCP (and TLS) handshake per request; the cap on connections per
 * origin bounds what one worker asks of a server. undici is loaded on the first request, not at
 * start-up: every CLI command imports this module, and most never touch the Hub.
 */
import type { Agent, request } from "undici";

/** Connections per origin: above the Hub client's request cap, so the cap is what limits. */
const CONNECTIONS_PER_ORIGIN = 32;

export interface StorageHttp {
  agent: Agent;
  request: typeof request;
}

let loaded: Promise<StorageHttp> | undefined;

export function storageHttp(): Promise<StorageHttp> {
  return (loaded ??= import("undici").then((u) => ({
    agent: new u.Agent({ connections: CONNECTIONS_PER_ORIGIN, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 300_000 }),
    request: u.request,
  })));
}
