/**
 * In-process transport with JetStream's delivery semantics, for embedded runs (coordinator and
 * workers in one process) and unit tests. State lives in a MemoryBroker; several transports may
 * share one broker to stand for several processes (each with its own close()).
 *
 * Emulated: work-queue retention, competing consumers on a durable, ack deadline with
 * redelivery, attempt counting, max-deliver, nak delay, term, heartbeat, headers, a replayable
 * results log, KV with revisions/compare-and-set/TTL, object store. Bodies round-trip through the
 * codec exactly as on the wire.
 */
import { encodeMessage, decodeMessage, type CodecOptions, type PeerRole } from "@mergeloom/proto/codec";
import { runDelivery, subjectMatches } from "./run-delivery.js";
import type { MessageKind, MessageMap, AnyMessage } from "@mergeloom/proto/schemas";
import {
  resolveConsumeOptions,
  type AbandonedTask,
  type ConsumeOptions,
  type Handler,
  type KvBucket,
  type KvChange,
  type KvEntry,
  type KvOptions,
  type ObjectBucket,
  type ObjectInfo,
  type Received,
  type ResolvedConsumeOptions,
  type Stoppable,
  type SubscribeOptions,
  type Transport,
} from "./transport.js";
import { OpenSubscriptions } from "./open-subscriptions.js";
import { checkBucketName, checkKvKey, KvConflictError, TransportError } from "./transport-errors.js";

interface QueuedMsg {
  seq: number;
  subject: string;
  data: Uint8Array;
  headers: Record<string, string>;
  deliveries: number;
  state: "ready" | "inflight" | "done";
  availableAt: number;
  lease?: NodeJS.Timeout;
}

interface Member {
  free: number;
  deliver(m: QueuedMsg): void;
}

class WorkQueue {
  msgs: QueuedMsg[] = [];
  members = new Set<Member>();
  private wake?: NodeJS.Timeout;
  constructor(
    readonly filter: string,
    public opts: ResolvedConsumeOptions,
    /** Told about each message given up after maxDeliver lapsed leases (JetStream's MAX_DELIVERIES advisory). */
    private readonly abandoned: (m: QueuedMsg) => void,
  ) {}

  pump(): void {
    clearTimeout(this.wake);
    this.msgs = this.msgs.filter((m) => m.state !== "done");
    const now = Date.now();
    let nextAt = Infinity;
    for (const m of this.msgs) {
      if (m.state !== "ready") continue;
      if (m.availableAt > now) {
        nextAt = Math.min(nextAt, m.availableAt);
        continue;
      }
      const member = [...this.members].find((x) => x.free > 0);
      if (!member) break;
      this.start(m);
      member.deliver(m);
    }
    if (nextAt < Infinity) {
      this.wake = setTimeout(() => this.pump(), nextAt - now);
      this.wake.unref?.();
    }
  }

  private start(m: QueuedMsg): void {
    m.state = "inflight";
    m.deliveries++;
    this.arm(m);
  }

  /** Server-side ack deadline: on expiry the message is redelivered, unless out of attempts. */
  arm(m: QueuedMsg): void {
    clearTimeout(m.lease);
    const delivery = m.deliveries;
    m.lease = setTimeout(() => {
      if (m.state !== "inflight" || m.deliveries !== delivery) return;
      const exhausted = m.deliveries >= this.opts.maxDeliver;
      this.release(m, exhausted ? "done" : "ready", 0);
      if (exhausted) this.abandoned(m);
    }, this.opts.ackWaitMs);
    m.lease.unref?.();
  }

  release(m: QueuedMsg, state: "ready" | "done", delayMs: number): void {
    clearTimeout(m.lease);
    m.state = state;
    m.availableAt = Date.now() + delayMs;
    this.pump();
  }
}

interface LogEntry {
  seq: number;
  subject: string;
  data: Uint8Array;
  headers: Record<string, string>;
}

interface KvRecord {
  data: Uint8Array | null;
  revision: number;
  created: number;
}

class MemKvStore {
  seq = 0;
  entries = new Map<string, KvRecord>();
  watchers = new Set<(key: string, rec: KvRecord) => void>();
  constructor(public ttlMs: number | undefined) {}
  live(key: string): KvRecord | undefined {
    const r = this.entries.get(key);
    if (!r) return undefined;
    if (this.ttlMs && r.created + this.ttlMs <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return r;
  }
  write(key: string, data: Uint8Array | null): number {
    const rec = { data, revision: ++this.seq, created: Date.now() };
    this.entries.set(key, rec);
    for (const w of this.watchers) w(key, rec);
    return rec.revision;
  }
}

/** Shared state of one emulated NATS account. */
export class MemoryBroker {
  private nextSeq = 0;
  readonly queues = new Map<string, WorkQueue>();
  /** Watchers of abandoned tasks, by durable (they may watch before any consumer exists). */
  readonly abandonWatchers = new Map<string, Set<(m: QueuedMsg) => void>>();
  /** Tasks published while no consumer's filter matched (work-queue retention keeps them). */
  readonly unclaimed: QueuedMsg[] = [];
  readonly log: LogEntry[] = [];
  readonly logListeners = new Set<(e: LogEntry) => void>();
  readonly kvs = new Map<string, MemKvStore>();
  readonly objects = new Map<string, Map<string, { data: Uint8Array; created: number; ttlMs?: number }>>();

  seq(): number {
    return ++this.nextSeq;
  }

  enqueue(subject: string, data: Uint8Array, headers: Record<string, string>): void {
    const m: QueuedMsg = { seq: this.seq(), subject, data, headers, deliveries: 0, state: "ready", availableAt: 0 };
    const q = [...this.queues.values()].find((x) => subjectMatches(x.filter, subject));
    if (!q) {
      this.unclaimed.push(m);
      return;
    }
    q.msgs.push(m);
    q.pump();
  }

  queue(filter: string, opts: ResolvedConsumeOptions): WorkQueue {
    let q = this.queues.get(opts.durable);
    if (q) {
      if (q.filter !== filter) {
        throw new TransportError(`consume ${filter}: durable '${opts.durable}' already consumes ${q.filter}; pick another durable name`, { retryable: false });
      }
      q.opts = opts;
      return q;
    }
    q = new WorkQueue(filter, opts, (m) => {
      for (const w of this.abandonWatchers.get(opts.durable) ?? []) w(m);
    });
    this.queues.set(opts.durable, q);
    for (let i = 0; i < this.unclaimed.length;) {
      if (subjectMatches(filter, this.unclaimed[i].subject)) q.msgs.push(...this.unclaimed.splice(i, 1));
      else i++;
    }
    return q;
  }
}

export interface MemoryTransportOptions {
  /** Share state with other transports (stands for several processes on one server). */
  broker?: MemoryBroker;
  role?: PeerRole;
  maxMessageBytes?: number;
}

export class MemoryTransport implements Transport {
  readonly broker: MemoryBroker;
  private readonly codec: CodecOptions;
  private readonly open = new OpenSubscriptions();
  private closed = false;

  constructor(opts: MemoryTransportOptions = {}) {
    this.broker = opts.broker ?? new MemoryBroker();
    this.codec = { role: opts.role, maxBytes: opts.maxMessageBytes };
  }

  async publishTask<K extends MessageKind>(subject: string, kind: K, body: MessageMap[K], headers: Record<string, string> = {}): Promise<void> {
    this.checkOpen();
    this.broker.enqueue(subject, encodeMessage(kind, body, { ...this.codec, subject }), { ...headers });
  }

  async consume<K extends MessageKind>(subject: string, kind: K, handler: Handler<MessageMap[K]>, options?: ConsumeOptions): Promise<Stoppable> {
    this.checkOpen();
    const opts = resolveConsumeOptions(subject, options);
    const q = this.broker.queue(subject, opts);
    const stopCtl = new AbortController();
    const running = new Set<Promise<void>>();
    const member: Member = {
      free: opts.concurrency,
      deliver: (m) => {
        member.free--;
        const delivery = m.deliveries;
        const p = runDelivery(
          {
            subject: m.subject,
            data: m.data,
            headers: { ...m.headers },
            attempt: m.deliveries,
            renew: () => {
              if (m.state === "inflight" && m.deliveries === delivery) q.arm(m);
            },
          },
          kind,
          handler,
          q.opts,
          stopCtl.signal,
          this.codec,
        ).then((outcome) => {
          // Like JetStream, ack/term act on the message; a nak from a lapsed delivery is ignored.
          const current = m.state === "inflight" && m.deliveries === delivery;
          if (outcome.kind === "ack" || outcome.kind === "term") {
            if (m.state !== "done") q.release(m, "done", 0);
          } else if (outcome.kind === "nak" && current) {
            q.release(m, "ready", outcome.delayMs);
          }
        });
        running.add(p);
        void p.finally(() => {
          running.delete(p);
          member.free++;
          if (q.members.has(member)) q.pump();
        });
      },
    };
    q.members.add(member);
    queueMicrotask(() => q.pump());
    return this.open.track(async (o) => {
      q.members.delete(member);
      if (o?.abort) stopCtl.abort(new TransportError(`consume ${subject}: consumer stopped`));
      await Promise.all([...running]);
    });
  }

  async watchAbandoned(subject: string, onAbandoned: (a: AbandonedTask) => void, options?: Pick<ConsumeOptions, "durable">): Promise<Stoppable> {
    this.checkOpen();
    const durable = resolveConsumeOptions(subject, options).durable;
    let set = this.broker.abandonWatchers.get(durable);
    if (!set) this.broker.abandonWatchers.set(durable, (set = new Set()));
    const w = (m: QueuedMsg) => onAbandoned({ headers: { ...m.headers }, deliveries: m.deliveries, discard: async () => undefined });
    set.add(w);
    return this.open.track(async () => {
      set.delete(w);
    });
  }

  async publish(subject: string, message: AnyMessage, headers: Record<string, string> = {}): Promise<void> {
    this.checkOpen();
    const e: LogEntry = {
      seq: this.broker.seq(),
      subject,
      data: encodeMessage(message.kind, message.body as never, { ...this.codec, subject }),
      headers: { ...headers },
    };
    this.broker.log.push(e);
    for (const l of this.broker.logListeners) l(e);
  }

  async subscribe(subject: string, handler: (m: Received) => void | Promise<void>, opts: SubscribeOptions = {}): Promise<Stoppable> {
    this.checkOpen();
    let chain = Promise.resolve();
    let stopped = false;
    const onEntry = (e: LogEntry) => {
      if (!subjectMatches(subject, e.subject)) return;
      chain = chain.then(async () => {
        if (stopped) return;
        try {
          const message = decodeMessage(e.data, { ...this.codec, subject: e.subject });
          await handler({ subject: e.subject, message, headers: { ...e.headers }, seq: e.seq });
        } catch (err) {
          opts.onError?.(err);
        }
      });
    };
    if (opts.deliver === "all") for (const e of this.broker.log) onEntry(e);
    this.broker.logListeners.add(onEntry);
    return this.open.track(async () => {
      stopped = true;
      this.broker.logListeners.delete(onEntry);
      await chain;
    });
  }

  async kv<K extends MessageKind>(bucket: string, kind: K, opts: KvOptions = {}): Promise<KvBucket<MessageMap[K]>> {
    this.checkOpen();
    checkBucketName(bucket);
    let store = this.broker.kvs.get(bucket);
    if (!store) this.broker.kvs.set(bucket, (store = new MemKvStore(opts.ttlMs)));
    const s = store;
    const codec = { ...this.codec, subject: `kv ${bucket}` };
    const enc = (key: string, v: MessageMap[K]) => {
      checkKvKey(bucket, key);
      return encodeMessage(kind, v, codec);
    };
    const dec = (key: string, d: Uint8Array) => decodeMessage(d, { ...codec, subject: `kv ${bucket}/${key}`, expect: kind }).body as MessageMap[K];
    const toEntry = (key: string, r: KvRecord | undefined): KvEntry<MessageMap[K]> | null =>
      r && r.data ? { key, value: dec(key, r.data), revision: r.revision, created: r.created } : null;
    return {
      name: bucket,
      get: async (key) => toEntry(key, s.live(key)),
      put: async (key, v) => s.write(key, enc(key, v)),
      create: async (key, v) => {
        const data = enc(key, v);
        const cur = s.live(key);
        if (cur?.data) throw new KvConflictError(bucket, key, `key exists at revision ${cur.revision}`);
        return s.write(key, data);
      },
      update: async (key, v, revision) => {
        const data = enc(key, v);
        const cur = s.live(key)?.revision ?? 0;
        if (cur !== revision) throw new KvConflictError(bucket, key, `expected revision ${revision}, key is at ${cur}`);
        return s.write(key, data);
      },
      delete: async (key) => {
        checkKvKey(bucket, key);
        if (s.live(key)) s.write(key, null);
      },
      keys: async () => [...s.entries.keys()].filter((k) => s.live(k)?.data),
      watch: async (fn, wopts = {}) => {
        const emit = (key: string, r: KvRecord) => {
          if (wopts.key && !subjectMatches(wopts.key, key)) return;
          if (!r.data) return fn({ key, value: null, op: "delete", revision: r.revision });
          let value: MessageMap[K];
          try {
            value = dec(key, r.data);
          } catch (err) {
            return wopts.onError?.(err, key);
          }
          fn({ key, value, op: "put", revision: r.revision } satisfies KvChange<MessageMap[K]>);
        };
        if (!wopts.updatesOnly) {
          const current = [...s.entries.keys()].map((k) => [k, s.live(k)] as const).filter((x): x is [string, KvRecord] => !!x[1]?.data);
          for (const [k, r] of current.sort((a, b) => a[1].revision - b[1].revision)) emit(k, r);
        }
        s.watchers.add(emit);
        return this.open.track(async () => {
          s.watchers.delete(emit);
        });
      },
    };
  }

  async objects(bucket: string, opts: { ttlMs?: number } = {}): Promise<ObjectBucket> {
    this.checkOpen();
    checkBucketName(bucket);
    let store = this.broker.objects.get(bucket);
    if (!store) this.broker.objects.set(bucket, (store = new Map()));
    const s = store;
    const live = (name: string) => {
      const o = s.get(name);
      if (o && o.ttlMs && o.created + o.ttlMs <= Date.now()) {
        s.delete(name);
        return undefined;
      }
      return o;
    };
    const info = (name: string): ObjectInfo | null => {
      const o = live(name);
      return o ? { name, size: o.data.byteLength } : null;
    };
    return {
      name: bucket,
      put: async (name, data) => {
        const bytes = data instanceof Uint8Array ? data.slice() : await collect(data);
        s.set(name, { data: bytes, created: Date.now(), ttlMs: opts.ttlMs });
        return { name, size: bytes.byteLength };
      },
      get: async (name) => {
        const o = live(name);
        if (!o) return null;
        const data = o.data;
        return (async function* () {
          // Chunked like the object store, so consumers cannot rely on one buffer.
          for (let i = 0; i < data.byteLength; i += 128 * 1024) yield data.slice(i, i + 128 * 1024);
        })();
      },
      getBytes: async (name) => live(name)?.data.slice() ?? null,
      info: async (name) => info(name),
      delete: async (name) => {
        s.delete(name);
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.open.stopAll();
  }

  private checkOpen(): void {
    if (this.closed) throw new TransportError("use transport: it is closed", { retryable: false });
  }
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of chunks) {
    parts.push(c);
    n += c.byteLength;
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}
