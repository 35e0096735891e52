/**
 * msgpackr codec with a versioned envelope `{v, kind, body}`. Decoding checks, in order: the size
 * (before any parsing, so a hostile or runaway message costs nothing), msgpack syntax, the protocol
 * version, the kind, then the body against its zod schema. Every failure is a ProtocolError
 * (non-retryable: redelivering the same bytes cannot help).
 */
import { Packr } from "msgpackr";
import type { z } from "zod";
import { ProtocolError } from "./errors.js";
import { MESSAGE_KINDS, MESSAGE_SCHEMAS, type AnyMessage, type MessageKind, type MessageMap } from "./schemas.js";
import { PROTOCOL_VERSION } from "./subjects.js";

/** 1 MiB: the NATS default max_payload; tensors travel by reference, never inside messages. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

export type PeerRole = "coordinator" | "worker";

export interface CodecOptions {
  /** Reject encoded messages larger than this many bytes (default MAX_MESSAGE_BYTES). */
  maxBytes?: number;
  /** Which side this process is, so a version mismatch says who speaks what. */
  role?: PeerRole;
  /** Where the message came from or goes to (error messages only). */
  subject?: string;
}

// Plain maps (no msgpackr records extension) so any msgpack implementation can read the wire.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: "number" });

export function encodeMessage<K extends MessageKind>(kind: K, body: MessageMap[K], opts: CodecOptions = {}): Uint8Array {
  const bytes = packr.pack({ v: PROTOCOL_VERSION, kind, body });
  checkSize(bytes.byteLength, `encode ${kind}${where(opts)}`, opts);
  return bytes;
}

/** Bytes `encodeMessage` would produce, without the size check (planning sizes tasks with it). */
export function encodedMessageBytes<K extends MessageKind>(kind: K, body: MessageMap[K]): number {
  return packr.pack({ v: PROTOCOL_VERSION, kind, body }).byteLength;
}

/** Decodes and validates one message; with `expect`, any other kind is rejected. */
export function decodeMessage<K extends MessageKind = MessageKind>(
  bytes: Uint8Array,
  opts: CodecOptions & { expect?: K | readonly K[] } = {},
): Extract<AnyMessage, { kind: K }> {
  const op = `decode message${where(opts)}`;
  checkSize(bytes.byteLength, op, opts);
  let raw: unknown;
  try {
    raw = packr.unpack(bytes);
  } catch (err) {
    throw invalid(`${op}: not valid msgpack (${(err as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw invalid(`${op}: field v: missing envelope {v, kind, body}`);
  const env = raw as { v?: unknown; kind?: unknown; body?: unknown };
  if (typeof env.v !== "number") throw invalid(`${op}: field v: expected the protocol version number`);
  if (env.v !== PROTOCOL_VERSION) throw versionMismatch(op, env.v, opts.role);
  const kind = env.kind;
  if (typeof kind !== "string" || !(MESSAGE_KINDS as string[]).includes(kind)) {
    throw invalid(`${op}: field kind: unknown message kind '${String(kind)}' (known: ${MESSAGE_KINDS.join(", ")})`);
  }
  const expected = opts.expect === undefined ? undefined : ([] as readonly string[]).concat(opts.expect);
  if (expected && !expected.includes(kind)) throw invalid(`${op}: field kind: got '${kind}', expected ${expected.join(" or ")}`);
  const schema = MESSAGE_SCHEMAS[kind as MessageKind] as z.ZodType<unknown>;
  const parsed = schema.safeParse(env.body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = ["body", ...(issue?.path ?? [])].map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join("");
    throw invalid(`decode ${kind}${where(opts)}: field ${path}: ${issue?.message ?? "invalid"}`);
  }
  return { kind, body: parsed.data } as Extract<AnyMessage, { kind: K }>;
}

function checkSize(n: number, op: string, opts: CodecOptions): void {
  const max = opts.maxBytes ?? MAX_MESSAGE_BYTES;
  if (n > max) {
    throw invalid(`${op}: message is ${n} bytes, over the ${max}-byte limit; messages carry references, move bytes through storage or the object store`);
  }
}

function versionMismatch(op: string, theirs: number, role: PeerRole | undefined): ProtocolError {
  const local = role ?? "this process";
  const remote = role === "coordinator" ? "worker" : role === "worker" ? "coordinator" : "the sender";
  return new ProtocolError(
    `${op}: ${local} speaks v${PROTOCOL_VERSION}, ${remote} speaks v${theirs}; run the same mergeloom version on both`,
    "PROTOCOL_MISMATCH",
  );
}

function invalid(message: string): ProtocolError {
  return new ProtocolError(message, "MESSAGE_INVALID");
}

function where(opts: CodecOptions): string {
  return opts.subject ? ` on ${opts.subject}` : "";
}
