/**
 * The safetensors container format: header parsing with the checks safetensors itself and
 * huggingface.js make, and header building for writers. Pure functions over bytes; reading files
 * is the storage layer's job.
 */
import { CheckpointError } from "../errors/index.js";
import { DTYPE_BYTES, isDType, numelOf, type DType } from "@mergeloom/proto/dtype";

/** safetensors' own cap (MAX_HEADER_SIZE): a larger length is a corrupt or hostile file. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute byte offset of the tensor's data in its file. */
  offset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  /** 8 + header JSON length: where tensor data starts. */
  dataStart: number;
  metadata: Record<string, string>;
  tensors: Map<string, TensorEntry>;
}

/** Reads the 8-byte little-endian header length and checks it against the cap and the file size. */
export function parseHeaderLength(file: string, prefix: Uint8Array, fileSize: number): number {
  if (fileSize < 8 || prefix.byteLength < 8) {
    throw new CheckpointError(file, `file is ${fileSize} bytes, too short for a safetensors header; the file is truncated or not safetensors`);
  }
  const n = Number(new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true));
  if (n > MAX_HEADER_BYTES) {
    throw new CheckpointError(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit; the file is corrupt or not safetensors`);
  }
  if (8 + n > fileSize) {
    throw new CheckpointError(file, `header length ${n} runs past the end of the ${fileSize}-byte file; the file is truncated`);
  }
  return n;
}

/** Parses and validates the JSON header. `json` is the N header bytes after the length prefix. */
export function parseSafetensorsHeader(file: string, json: Uint8Array, fileSize: number): SafetensorsHeader {
  const dataStart = 8 + json.byteLength;
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(json));
  } catch (err) {
    throw new CheckpointError(file, `header is not valid UTF-8 JSON (${(err as Error).message}); the file is corrupt`, { cause: err });
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new CheckpointError(file, "header JSON is not an object; the file is corrupt");
  }
  const dataBytes = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorEntry>();
  const spans: Array<[number, number, string]> = [];
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw new CheckpointError(file, "__metadata__ must be an object of strings");
      }
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== "string") throw new CheckpointError(file, `__metadata__.${k} must be a string`);
        metadata[k] = v;
      }
      continue;
    }
    const e = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (e === null || typeof e !== "object") throw new CheckpointError(file, `tensor '${name}': entry is not an object`);
    if (typeof e.dtype !== "string" || !isDType(e.dtype)) {
      throw new CheckpointError(file, `tensor '${name}': unknown dtype ${JSON.stringify(e.dtype)} (known: ${Object.keys(DTYPE_BYTES).join(", ")})`);
    }
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new CheckpointError(file, `tensor '${name}': shape ${JSON.stringify(e.shape)} is not a list of non-negative integers`);
    }
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[0] > off[1]) {
      throw new CheckpointError(file, `tensor '${name}': data_offsets ${JSON.stringify(off)} must be [begin, end] with 0 <= begin <= end`);
    }
    const [begin, end] = off as [number, number];
    const expected = numelOf(e.shape) * DTYPE_BYTES[e.dtype];
    if (end - begin !== expected) {
      throw new CheckpointError(file, `tensor '${name}': ${e.dtype}${JSON.stringify(e.shape)} needs ${expected} bytes but data_offsets span ${end - begin}`);
    }
    if (end > dataBytes) {
      throw new CheckpointError(file, `tensor '${name}': data ends at byte ${dataStart + end} but the file has ${fileSize} bytes; the file is truncated`);
    }
    tensors.set(name, { name, dtype: e.dtype, shape: e.shape.slice(), offset: dataStart + begin, byteLength: expected });
    spans.push([begin, end, name]);
  }
  // The reference implementation (safetensors' Rust `Metadata::validate` and `read_metadata`)
  // sorts entries by offsets and requires each to begin where the previous one ended, the first
  // at 0 and the last at the end of the file: no overlap, no hole, no trailing bytes. Checking
  // pairs of neighbours instead let a zero-length tensor sorted between two overlapping ones hide
  // the overlap.
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let pos = 0;
  let prev = "";
  for (const [b, e, n] of spans) {
    if (b < pos) {
      throw new CheckpointError(
        file,
        `tensors '${prev}' and '${n}' overlap (tensor '${n}' starts at data byte ${b}, before byte ${pos} where '${prev}' ends); the file is corrupt`,
      );
    }
    if (b > pos) {
      throw new CheckpointError(
        file,
        `data bytes ${pos}-${b} before tensor '${n}' belong to no tensor (safetensors requires contiguous tensor data); the file is corrupt`,
      );
    }
    pos = e;
    prev = n;
  }
  if (pos !== dataBytes) {
    throw new CheckpointError(
      file,
      `the file has ${dataBytes - pos} bytes after the last tensor's data (safetensors requires the tensors to end at the end of the file); the file is corrupt or was appended to`,
    );
  }
  return { dataStart, metadata, tensors };
}

export interface HeaderEntryInput {
  name: string;
  dtype: DType;
  shape: readonly number[];
}

/**
 * Builds a header (length prefix + JSON padded with spaces to a multiple of 8, as the reference
 * writer does) for tensors laid out contiguously in the given order. Returns the bytes and each
 * tensor's offset relative to the start of the data section.
 */
export function buildSafetensorsHeader(
  entries: readonly HeaderEntryInput[],
  metadata: Record<string, string> = { format: "pt" },
): {
  bytes: Buffer;
  offsets: number[];
  dataBytes: number;
} {
  const obj: Record<string, unknown> = { __metadata__: metadata };
  const offsets: number[] = [];
  let pos = 0;
  for (const e of entries) {
    const n = numelOf(e.shape) * DTYPE_BYTES[e.dtype];
    obj[e.name] = { dtype: e.dtype, shape: [...e.shape], data_offsets: [pos, pos + n] };
    offsets.push(pos);
    pos += n;
  }
  let json = JSON.stringify(obj);
  const pad = (8 - (Buffer.byteLength(json) % 8)) % 8;
  json += " ".repeat(pad);
  const body = Buffer.from(json, "utf8");
  const bytes = Buffer.alloc(8 + body.byteLength);
  bytes.writeBigUInt64LE(BigInt(body.byteLength), 0);
  body.copy(bytes, 8);
  return { bytes, offsets, dataBytes: pos };
}
