/**
 * JetStream transport. Tasks go to a work-queue stream read through one durable, explicit-ack pull
 * consumer per task subject (ack_wait, max_deliver); results and events go to a limits stream
 * replayed through ordered consumers; KV and objects use @nats-io/kv and @nats-io/obj.
 *
 * Backoff is applied as the nak delay, not through the consumer's `backoff` setting: the server's
 * backoff replaces ack_wait for ack timeouts (and ignores naks), which would break heartbeat-based
 * leases. Streams and consumers are created idempotently, so coordinator and workers may both
 * start first. Requires nats-server >= 2.9.
 */
import { readFile } from "node:fs/promises";
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { Kvm, type KV, type KvEntry as NatsKvEntry } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import {
  connect,
  credsAuthenticator,
  TimeoutError,
  headers as natsHeaders,
  nanos,
  nkeyAuthenticator,
  type Authenticator,
  type MsgHdrs,
  type NatsConnection,
  type NodeConnectionOptions,
} from "@nats-io/transport-node";
import { decodeMessage, encodeMessage, type CodecOptions, type PeerRole } from "@mergeloom/proto/codec";
import { errorMessage } from "@mergeloom/proto/errors";
import { parseNatsUrls, redactSecrets } from "./nats-url.js";
import { runDelivery } from "./run-delivery.js";
import type { AnyMessage, MessageKind, MessageMap } from "@mergeloom/proto/schemas";
import { streams as STREAMS, SUBJECT_ROOT } from "@mergeloom/proto/subjects";
import {
  resolveConsumeOptions,
  type AbandonedTask,
  type ConsumeOptions,
  type Handler,
  type KvBucket,
  type KvOptions,
  type ObjectBucket,
  type Received,
  type Stoppable,
  type SubscribeOptions,
  type Transport,
} from "./transport.js";
import { OpenSubscriptions } from "./open-subscriptions.js";
import { checkBucketName, checkKvKey, KvConflictError, TransportError } from "./transport-errors.js";

export interface NatsConnectOptions {
  /**
   * `nats://host:4222`, or several for a cluster. Credentials in a URL (`nats://user:pass@host`,
   * `nats://token@host`) are used as the nats CLI uses them: they win over user/pass/token.
   */
  servers: string | string[];
  user?: string;
  pass?: string;
  token?: string;
  /** NKey seed (`SU…`) for nkey authentication. */
  nkeySeed?: string;
  /** Path of a `.creds` file (JWT + seed). */
  credsFile?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Connection name shown in server monitoring. */
  name?: string;
  /** Namespace for subjects, streams and buckets (one deployment or test among many on a server). */
  prefix?: string;
  role?: PeerRole;
  maxMessageBytes?: number;
  /** How long results/events are kept for replay (default 7 days). */
  resultsMaxAgeMs?: number;
  /** Stream/bucket replicas in a cluster (default 1). */
  replicas?: number;
  /** How long one pull request waits for a task; also bounds how long stop() takes (default 1000, min 1000). */
  pullExpiresMs?: number;
}

export async function connectNatsTransport(opts: NatsConnectOptions): Promise<NatsTransport> {
  const fromUrl = parseNatsUrls([opts.servers].flat());
  const auth =
    fromUrl.user !== undefined
      ? { user: fromUrl.user, pass: fromUrl.pass, token: undefined }
      : fromUrl.token !== undefined
        ? { user: undefined, pass: undefined, token: fromUrl.token }
        : { user: opts.user, pass: opts.pass, token: opts.token };
  // Every message below names the servers without credentials and scrubs any secret nats.js may echo.
  const where = fromUrl.servers.join(",");
  const scrub = (err: unknown) => redactSecrets(errorMessage(err), [auth.pass, auth.token, opts.pass, opts.token, opts.nkeySeed]);
  const authenticators: Authenticator[] = [];
  if (opts.nkeySeed) authenticators.push(nkeyAuthenticator(new TextEncoder().encode(opts.nkeySeed)));
  if (opts.credsFile) {
    const creds = await readFile(opts.credsFile).catch((err) => {
      throw new TransportError(`read creds file ${opts.credsFile}: ${scrub(err)}`, { cause: err, retryable: false });
    });
    authenticators.push(credsAuthenticator(new Uint8Array(creds)));
  }
  const connectOpts: NodeConnectionOptions = {
    servers: fromUrl.servers,
    name: opts.name,
    user: auth.user,
    pass: auth.pass,
    token: auth.token,
    authenticator: authenticators.length ? authenticators : undefined,
    tls: opts.tls ? { caFile: opts.tls.caFile, certFile: opts.tls.certFile, keyFile: opts.tls.keyFile } : undefined,
    // Ride out server restarts: JetStream state is durable, so reconnecting is always right.
    maxReconnectAttempts: -1,
    // nats.js captures a stack trace per request for async error reports; at thousands of
    // requests a second that is a measurable share of the CPU (bench/dispatch-overhead.ts).
    noAsyncTraces: true,
    reconnectTimeWait: 250,
  };
  let nc: NatsConnection;
  try {
    nc = await connect(connectOpts);
  } catch (err) {
    // No `cause`: the original error's text may hold a secret and causes get printed by stack dumps.
    throw new TransportError(`connect to nats ${where}: ${scrub(err)}; check the server address and credentials`);
  }
  try {
    const t = new NatsTransport(nc, await jetstreamManager(nc), { ...opts, servers: fromUrl.servers, user: auth.user, pass: auth.pass, token: auth.token });
    await t.ensureStreams();
    return t;
  } catch (err) {
    await nc.close();
    throw err instanceof TransportError ? err : new TransportError(`set up jetstream on ${where}: ${scrub(err)}; is the server running with -js?`);
  }
}

export class NatsTransport implements Transport {
  readonly js: JetStreamClient;
  private readonly codec: CodecOptions;
  private readonly subjectPrefix: string;
  private readonly namePrefix: string;
  private readonly open = new OpenSubscriptions();
  private closed = false;
  /** Resolves when connected; replaced by a pending promise while disconnected. */
  private connected: Promise<void> = Promise.resolve();

  constructor(
    readonly nc: NatsConnection,
    readonly jsm: JetStreamManager,
    private readonly opts: NatsConnectOptions,
  ) {
    this.js = jetstream(nc);
    this.codec = { role: opts.role, maxBytes: opts.maxMessageBytes };
    const p = opts.prefix?.replace(/[^A-Za-z0-9_-]/g, "_");
    this.subjectPrefix = p ? `${p}.` : "";
    this.namePrefix = p ? `${p}_` : "";
    void this.trackConnection();
  }

  /** Requests sent while disconnected are lost (they time out), so API calls wait for a reconnect. */
  private async trackConnection(): Promise<void> {
    let resolve: (() => void) | undefined;
    for await (const s of this.nc.status()) {
      if (s.type === "disconnect" && !resolve) {
        this.connected = new Promise<void>((r) => (resolve = r));
      } else if (s.type === "reconnect" && resolve) {
        resolve();
        resolve = undefined;
      }
    }
    resolve?.();
  }

  /** Creates (or confirms) the task and results streams. */
  async ensureStreams(): Promise<void> {
    const replicas = this.opts.replicas ?? 1;
    await this.ensureStream({
      name: this.stream(STREAMS.tasks),
      subjects: [this.wire(`${SUBJECT_ROOT}.task.>`)],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      num_replicas: replicas,
    });
    await this.ensureStream({
      name: this.stream(STREAMS.results),
      subjects: [this.wire(`${SUBJECT_ROOT}.result.>`), this.wire(`${SUBJECT_ROOT}.event.>`)],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: nanos(this.opts.resultsMaxAgeMs ?? 7 * 24 * 3600_000),
      num_replicas: replicas,
    });
  }

  async publishTask<K extends MessageKind>(subject: string, kind: K, body: MessageMap[K], hdrs: Record<string, string> = {}): Promise<void> {
    this.checkOpen();
    const data = encodeMessage(kind, body, { ...this.codec, subject });
    await this.guard(`publish task to ${subject}`, () => this.js.publish(this.wire(subject), data, { headers: toHeaders(hdrs) }));
  }

  async consume<K extends MessageKind>(subject: string, kind: K, handler: Handler<MessageMap[K]>, options?: ConsumeOptions): Promise<Stoppable> {
    this.checkOpen();
    const opts = resolveConsumeOptions(subject, options);
    const stream = this.stream(STREAMS.tasks);
    const config = {
      durable_name: opts.durable,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(opts.ackWaitMs),
      max_deliver: opts.maxDeliver,
      filter_subject: this.wire(subject),
      deliver_policy: DeliverPolicy.All,
      max_ack_pending: -1,
    };
    await this.guard(
      `create consumer ${opts.durable} for ${subject}`,
      async () => {
        const info = await this.jsm.consumers
          .info(stream, opts.durable)
          .catch((err) => (isApiError(err, JetStreamApiCodes.ConsumerNotFound) ? null : Promise.reject(err)));
        if (!info) {
          await this.jsm.consumers.add(stream, config);
        } else if (info.config.ack_wait !== config.ack_wait || info.config.max_deliver !== config.max_deliver) {
          // Last configuration wins, as in the in-memory transport.
          await this.jsm.consumers.update(stream, opts.durable, { ack_wait: config.ack_wait, max_deliver: config.max_deliver });
        }
      },
      true,
    );
    const consumer = await this.guard(`open consumer ${opts.durable}`, () => this.js.consumers.get(stream, opts.durable), true);
    const stopCtl = new AbortController();
    let stopping = false;
    const expires = Math.max(1000, this.opts.pullExpiresMs ?? 1000);
    const slot = async () => {
      while (!stopping && !this.nc.isClosed()) {
        let m: JsMsg | null;
        try {
          m = await consumer.next({ expires });
        } catch {
          // Disconnected or server restarting: wait and pull again.
          if (!stopping) await sleep(250);
          continue;
        }
        if (!m) continue;
        const msg = m;
        const outcome = await runDelivery(
          {
            subject: this.logical(msg.subject),
            data: msg.data,
            headers: fromHeaders(msg.headers),
            attempt: msg.info.deliveryCount,
            renew: () => msg.working(),
          },
          kind,
          handler,
          opts,
          stopCtl.signal,
          this.codec,
        );
        if (this.nc.isClosed()) break;
        if (outcome.kind === "ack") msg.ack();
        // No term reason: nats-server 2.9 ignores "+TERM <reason>" entirely (redelivering the task).
        else if (outcome.kind === "term") msg.term();
        else if (outcome.kind === "nak") msg.nak(outcome.delayMs);
      }
    };
    const slots = Array.from({ length: opts.concurrency }, slot);
    return this.open.track(async (o) => {
      stopping = true;
      if (o?.abort) stopCtl.abort(new TransportError(`consume ${subject}: consumer stopped`));
      await Promise.all(slots);
      if (!this.nc.isClosed()) await this.nc.flush().catch(() => undefined);
    });
  }

  /**
   * JetStream's MAX_DELIVERIES advisory for the durable: the stream sequence of a task that ran
   * out of deliveries without an ack; its headers come from the stream (the message stays there
   * until `discard`: a work queue keeps unacked messages).
   */
  async watchAbandoned(subject: string, onAbandoned: (a: AbandonedTask) => void, options?: Pick<ConsumeOptions, "durable">): Promise<Stoppable> {
    this.checkOpen();
    const durable = resolveConsumeOptions(subject, options).durable;
    const stream = this.stream(STREAMS.tasks);
    const advisory = `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${durable}`;
    const seen = new Set<number>();
    const ns = this.nc.subscribe(advisory, {
      callback: (err, msg) => {
        if (err) return;
        void (async () => {
          const a = msg.json<{ stream_seq?: number; deliveries?: number }>();
          const seq = a.stream_seq;
          if (typeof seq !== "number" || seen.has(seq)) return;
          seen.add(seq);
          const stored = await this.jsm.streams.getMessage(stream, { seq }).catch(() => null);
          if (!stored) return; // already discarded (by the coordinator that owns it)
          onAbandoned({
            headers: fromHeaders(stored.header),
            deliveries: a.deliveries ?? 0,
            discard: async () => {
              await this.jsm.streams.deleteMessage(stream, seq, false).catch(() => false);
            },
          });
        })().catch(() => undefined);
      },
    });
    return this.open.track(async () => {
      ns.unsubscribe();
    });
  }

  async publish(subject: string, message: AnyMessage, hdrs: Record<string, string> = {}): Promise<void> {
    this.checkOpen();
    const data = encodeMessage(message.kind, message.body as never, { ...this.codec, subject });
    await this.guard(`publish to ${subject}`, () => this.js.publish(this.wire(subject), data, { headers: toHeaders(hdrs) }));
  }

  async subscribe(subject: string, handler: (m: Received) => void | Promise<void>, opts: SubscribeOptions = {}): Promise<Stoppable> {
    this.checkOpen();
    const consumer = await this.guard(
      `subscribe to ${subject}`,
      () =>
        this.js.consumers.get(this.stream(STREAMS.results), {
          filter_subjects: this.wire(subject),
          deliver_policy: opts.deliver === "all" ? DeliverPolicy.All : DeliverPolicy.New,
        }),
      true,
    );
    const iter: ConsumerMessages = await this.guard(`subscribe to ${subject}`, () => consumer.consume());
    const loop = (async () => {
      for await (const m of iter) {
        const logical = this.logical(m.subject);
        try {
          const message = decodeMessage(m.data, { ...this.codec, subject: logical });
          await handler({ subject: logical, message, headers: fromHeaders(m.headers), seq: m.seq });
        } catch (err) {
          opts.onError?.(err);
        }
      }
    })();
    return this.open.track(async () => {
      await iter.close().catch(() => undefined);
      await loop;
    });
  }

  async kv<K extends MessageKind>(bucket: string, kind: K, opts: KvOptions = {}): Promise<KvBucket<MessageMap[K]>> {
    this.checkOpen();
    checkBucketName(bucket);
    const name = this.namePrefix + bucket;
    const kv: KV = await this.guard(
      `open kv ${bucket}`,
      () => new Kvm(this.js).create(name, { history: opts.history ?? 1, ttl: opts.ttlMs ?? 0, storage: StorageType.File, replicas: this.opts.replicas ?? 1 }),
      true,
    );
    const codec = { ...this.codec, subject: `kv ${bucket}` };
    const enc = (key: string, v: MessageMap[K]) => {
      checkKvKey(bucket, key);
      return encodeMessage(kind, v, codec);
    };
    const dec = (e: NatsKvEntry) => decodeMessage(e.value, { ...codec, subject: `kv ${bucket}/${e.key}`, expect: kind }).body as MessageMap[K];
    const cas = async (key: string, op: () => Promise<number>, defect: string) => {
      try {
        return await op();
      } catch (err) {
        if (isApiError(err, JetStreamApiCodes.StreamWrongLastSequence) || /wrong last sequence/i.test(errorMessage(err))) {
          throw new KvConflictError(bucket, key, defect, { cause: err });
        }
        throw wrap(`write kv ${bucket}/${key}`, err);
      }
    };
    return {
      name: bucket,
      get: async (key) => {
        checkKvKey(bucket, key);
        const e = await this.guard(`read kv ${bucket}/${key}`, () => kv.get(key), true);
        return e && e.operation === "PUT" ? { key, value: dec(e), revision: e.revision, created: e.created.getTime() } : null;
      },
      put: async (key, v) => {
        const data = enc(key, v);
        return this.guard(`write kv ${bucket}/${key}`, () => kv.put(key, data));
      },
      create: async (key, v) => {
        const data = enc(key, v);
        return cas(key, () => kv.create(key, data), "key exists");
      },
      update: async (key, v, revision) => {
        const data = enc(key, v);
        return cas(key, () => kv.update(key, data, revision), `expected revision ${revision}, key has moved on`);
      },
      delete: async (key) => {
        checkKvKey(bucket, key);
        await this.guard(`delete kv ${bucket}/${key}`, () => kv.delete(key));
      },
      keys: async () => {
        const it = await this.guard(`list kv ${bucket}`, () => kv.keys(), true);
        const out: string[] = [];
        for await (const k of it) out.push(k);
        return out;
      },
      watch: async (fn, wopts = {}) => {
        const it = await this.guard(`watch kv ${bucket}`, () => kv.watch({ key: wopts.key, include: wopts.updatesOnly ? "updates" : "" }));
        const loop = (async () => {
          for await (const e of it) {
            if (e.operation === "PUT") {
              let value: MessageMap[K];
              try {
                value = dec(e);
              } catch (err) {
                wopts.onError?.(err, e.key);
                continue;
              }
              fn({ key: e.key, value, op: "put", revision: e.revision });
            }
            // Initial replay shows only live keys, as the in-memory transport does.
            else if (e.isUpdate) fn({ key: e.key, value: null, op: "delete", revision: e.revision });
          }
        })();
        return this.open.track(async () => {
          it.stop();
          await loop.catch(() => undefined);
        });
      },
    };
  }

  async objects(bucket: string, opts: { ttlMs?: number } = {}): Promise<ObjectBucket> {
    this.checkOpen();
    checkBucketName(bucket);
    const store = await this.guard(
      `open object store ${bucket}`,
      () =>
        new Objm(this.js).create(this.namePrefix + bucket, {
          storage: StorageType.File,
          replicas: this.opts.replicas ?? 1,
          ...(opts.ttlMs ? { ttl: nanos(opts.ttlMs) } : {}),
        }),
      true,
    );
    const info = async (name: string) => {
      const i = await this.guard(`stat object ${bucket}/${name}`, () => store.info(name), true);
      return i && !i.deleted ? { name, size: i.size } : null;
    };
    return {
      name: bucket,
      put: async (name, data) => {
        const i = await this.guard(`write object ${bucket}/${name}`, () => store.put({ name }, toReadable(data)));
        return { name, size: i.size };
      },
      get: async (name) => {
        const r = await this.guard(`read object ${bucket}/${name}`, () => store.get(name));
        if (!r) return null;
        return (async function* () {
          const reader = r.data.getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            yield value;
          }
          // The digest is only checked once the last chunk has arrived.
          const err = await r.error;
          if (err) throw wrap(`read object ${bucket}/${name}`, err);
        })();
      },
      getBytes: async (name) => this.guard(`read object ${bucket}/${name}`, () => store.getBlob(name)),
      info,
      delete: async (name) => {
        if (await info(name)) await this.guard(`delete object ${bucket}/${name}`, () => store.delete(name));
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.open.stopAll();
    await this.nc.close();
  }

  private async ensureStream(cfg: Parameters<JetStreamManager["streams"]["add"]>[0]): Promise<void> {
    const exists = await this.jsm.streams.info(cfg.name).then(
      () => true,
      (err) => (isApiError(err, JetStreamApiCodes.StreamNotFound) ? false : Promise.reject(err)),
    );
    if (exists) return;
    try {
      await this.jsm.streams.add(cfg);
    } catch (err) {
      // Another process created it between our info and add.
      if (
        !(await this.jsm.streams.info(cfg.name).then(
          () => true,
          () => false,
        ))
      )
        throw err;
    }
  }

  /** Runs a JetStream call after any reconnect; idempotent calls are retried once on a timeout. */
  private async guard<T>(op: string, fn: () => Promise<T>, idempotent = false): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      // Wait for a reconnect (bounded); the timer is unref'd and cleared so it never holds the process open.
      let waitTimer: NodeJS.Timeout | undefined;
      await Promise.race([this.connected, new Promise<void>((r) => (waitTimer = setTimeout(r, 10_000)).unref())]);
      clearTimeout(waitTimer);
      try {
        return await fn();
      } catch (err) {
        if (idempotent && attempt < 3 && isTimeout(err) && !this.nc.isClosed()) continue;
        throw wrap(op, err);
      }
    }
  }

  private stream(name: string): string {
    return this.namePrefix + name;
  }
  private wire(subject: string): string {
    return this.subjectPrefix + subject;
  }
  private logical(subject: string): string {
    return subject.startsWith(this.subjectPrefix) ? subject.slice(this.subjectPrefix.length) : subject;
  }
  private checkOpen(): void {
    if (this.closed) throw new TransportError("use transport: it is closed", { retryable: false });
  }
}

function wrap(op: string, err: unknown): TransportError {
  return err instanceof TransportError ? err : new TransportError(`${op}: ${errorMessage(err)}`, { cause: err });
}

function isTimeout(err: unknown): boolean {
  return err instanceof TimeoutError || (err instanceof Error && err.cause instanceof TimeoutError);
}

function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

function toHeaders(h: Record<string, string>): MsgHdrs | undefined {
  const keys = Object.keys(h);
  if (!keys.length) return undefined;
  const out = natsHeaders();
  for (const k of keys) out.set(k, h[k]);
  return out;
}

function fromHeaders(h: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (h) for (const k of h.keys()) out[k] = h.get(k);
  return out;
}

function toReadable(data: Uint8Array | AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  if (data instanceof Uint8Array) {
    return new ReadableStream({
      start(c) {
        c.enqueue(data);
        c.close();
      },
    });
  }
  const it = data[Symbol.asyncIterator]();
  return new ReadableStream({
    async pull(c) {
      const { done, value } = await it.next();
      if (done) c.close();
      else c.enqueue(value);
    },
    async cancel() {
      await it.return?.();
    },
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
