/**
 * The process's (or thread's) HTTP connection pool for storage reads: an undici Agent, which keeps
 * one keep-alive Pool per origin. Range reads to the Hub and its storage host reuse warm
 * connections instead of paying a TCP (and TLS) handshake per request; the cap on connections per
 * origin bounds what one worker asks of a server.
 */
import { Agent } from "undici";

/** Connections per origin: above the Hub client's request cap, so the cap is what limits. */
const CONNECTIONS_PER_ORIGIN = 32;

let agent: Agent | undefined;

export function storageAgent(): Agent {
  return (agent ??= new Agent({ connections: CONNECTIONS_PER_ORIGIN, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 300_000 }));
}
