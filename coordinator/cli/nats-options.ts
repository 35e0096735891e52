/**
 * NATS connection flags shared by every command that talks to a cluster, with environment
 * fallbacks (the Helm chart passes credentials from a Secret as env vars).
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { MergeloomError } from "@mergeloom/proto/errors";
import type { NatsConnectOptions } from "@mergeloom/transport";

export interface NatsFlags {
  nats?: string;
  natsUser?: string;
  natsPassword?: string;
  natsToken?: string;
  natsNkeySeed?: string;
  natsCreds?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  natsPrefix?: string;
}

export function addNatsOptions(cmd: Command, opts: { required?: boolean } = {}): Command {
  return cmd
    .option(
      "--nats <url>",
      `NATS server URL(s), comma-separated; nats://user:password@host or nats://token@host credentials are used as the nats CLI uses them (and never printed)${opts.required ? "" : " (default: run embedded, no NATS)"} [env MERGELOOM_NATS_URL]`,
    )
    .option("--nats-user <user>", "NATS user [env NATS_USER]")
    .option("--nats-password <password>", "NATS password [env NATS_PASSWORD]")
    .option("--nats-token <token>", "NATS token [env NATS_TOKEN]")
    .option("--nats-nkey-seed <file>", "file holding an NKey seed [env NATS_NKEY_SEED: the seed itself]")
    .option("--nats-creds <file>", "NATS .creds file (JWT + seed) [env NATS_CREDS]")
    .option("--tls-ca <file>", "CA certificate for the NATS TLS connection [env NATS_TLS_CA]")
    .option("--tls-cert <file>", "client certificate [env NATS_TLS_CERT]")
    .option("--tls-key <file>", "client key [env NATS_TLS_KEY]")
    .option("--nats-prefix <name>", "namespace for subjects, streams and buckets (several deployments on one server) [env MERGELOOM_NATS_PREFIX]");
}

/** Connection options from flags and environment, or undefined when no NATS URL is given. */
export function natsOptionsFrom(flags: NatsFlags, env: NodeJS.ProcessEnv, role: "coordinator" | "worker", name?: string): NatsConnectOptions | undefined {
  const url = flags.nats ?? env.MERGELOOM_NATS_URL;
  if (!url) return undefined;
  let nkeySeed: string | undefined = env.NATS_NKEY_SEED;
  if (flags.natsNkeySeed) {
    try {
      nkeySeed = readFileSync(flags.natsNkeySeed, "utf8").trim();
    } catch (err) {
      throw new MergeloomError("USAGE", `--nats-nkey-seed: cannot read ${flags.natsNkeySeed} (${(err as Error).message})`);
    }
  }
  const ca = flags.tlsCa ?? env.NATS_TLS_CA;
  const cert = flags.tlsCert ?? env.NATS_TLS_CERT;
  const key = flags.tlsKey ?? env.NATS_TLS_KEY;
  return {
    servers: url
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    user: flags.natsUser ?? env.NATS_USER,
    pass: flags.natsPassword ?? env.NATS_PASSWORD,
    token: flags.natsToken ?? env.NATS_TOKEN,
    nkeySeed: nkeySeed || undefined,
    credsFile: flags.natsCreds ?? env.NATS_CREDS,
    tls: ca || cert || key ? { caFile: ca, certFile: cert, keyFile: key } : undefined,
    prefix: flags.natsPrefix ?? env.MERGELOOM_NATS_PREFIX,
    role,
    name,
  };
}
