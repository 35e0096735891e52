/**
 * Output shard layout decided before any tensor is merged: every tensor's file and absolute
 * offset is fixed up front, headers are written and files sized, so any worker process can write
 * any tensor with a positional write, in any order, with no coordination beyond the plan.
 */
import { open, writeFile } from "node:fs/promises";
import { fsErrorDetail } from "../storage/fs-error.js";
import { join } from "node:path";
import { DTYPE_BYTES, numelOf, type DType } from "@mergeloom/proto/dtype";
import { ProtocolError } from "@mergeloom/proto/errors";
import { StorageError } from "../errors/index.js";
import { buildSafetensorsHeader } from "../tensor/safetensors.js";

export interface ShardPlanEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute byte offset of the tensor's data in its file. */
  offset: number;
  byteLength: number;
}

export interface ShardPlan {
  /** File name inside the output directory: `model-00001-of-0000N.safetensors`, or `model.safetensors` alone. */
  file: string;
  /** Length prefix + padded JSON header, written at byte 0. */
  header: Buffer;
  entries: ShardPlanEntry[];
  /** Total file size: header plus tensor data. */
  fileBytes: number;
}

/**
 * HF/mergekit shard name: 1-based index and total, 5 digits each; a lone shard is
 * `model.safetensors` (mergekit's TensorWriter.finalize renames it so and writes no index).
 */
export function shardFileName(index: number, total: number): string {
  if (total === 1) return "model.safetensors";
  return `model-${String(index + 1).padStart(5, "0")}-of-${String(total).padStart(5, "0")}.safetensors`;
}

/**
 * Packs tensors in the given order, greedily, so each shard's tensor data is at most
 * `maxShardBytes`; a tensor larger than the cap gets a shard of its own (as HF and mergekit do).
 * Like mergekit, a single shard is named `model.safetensors`.
 */
export function layoutShards(tensors: readonly { name: string; dtype: DType; shape: readonly number[] }[], maxShardBytes: number): ShardPlan[] {
  if (!Number.isSafeInteger(maxShardBytes) || maxShardBytes <= 0) {
    throw new ProtocolError(`plan output shards: max shard size ${maxShardBytes} must be a positive integer number of bytes`, "MESSAGE_INVALID");
  }
  const seen = new Set<string>();
  const groups: (typeof tensors)[number][][] = [];
  let current: (typeof tensors)[number][] = [];
  let bytes = 0;
  for (const t of tensors) {
    if (seen.has(t.name)) throw new ProtocolError(`plan output shards: tensor '${t.name}' is listed twice`, "MESSAGE_INVALID");
    seen.add(t.name);
    const n = numelOf(t.shape) * DTYPE_BYTES[t.dtype];
    if (current.length > 0 && bytes + n > maxShardBytes) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(t);
    bytes += n;
  }
  if (current.length > 0) groups.push(current);
  return groups.map((group, i) => {
    const { bytes: header, offsets, dataBytes } = buildSafetensorsHeader(group);
    const entries = group.map((t, j) => ({
      name: t.name,
      dtype: t.dtype,
      shape: [...t.shape],
      offset: header.byteLength + offsets[j],
      byteLength: numelOf(t.shape) * DTYPE_BYTES[t.dtype],
    }));
    return { file: shardFileName(i, groups.length), header, entries, fileBytes: header.byteLength + dataBytes };
  });
}

/** Writes each shard's header and sizes the file (sparse where the filesystem allows). */
export async function preallocateShards(dir: string, shards: readonly ShardPlan[]): Promise<void> {
  await Promise.all(
    shards.map(async (s) => {
      const path = join(dir, s.file);
      try {
        const fh = await open(path, "w");
        try {
          await fh.write(s.header, 0, s.header.byteLength, 0);
          await fh.truncate(s.fileBytes);
        } finally {
          await fh.close();
        }
      } catch (err) {
        const full = ["ENOSPC", "EDQUOT"].includes((err as NodeJS.ErrnoException).code ?? "");
        throw new StorageError(`preallocate shard ${path}: ${fsErrorDetail(err)}`, { cause: err, retryable: !full });
      }
    }),
  );
}

/**
 * Writes model.safetensors.index.json: metadata.total_size (tensor payload bytes) and weight_map —
 * only for two or more shards, as mergekit does (a lone `model.safetensors` needs no index).
 */
export async function writeShardIndex(dir: string, shards: readonly ShardPlan[], metadata: Record<string, string> = {}): Promise<void> {
  if (shards.length < 2) return;
  let total = 0;
  const weightMap: Record<string, string> = {};
  for (const s of shards) {
    for (const e of s.entries) {
      total += e.byteLength;
      weightMap[e.name] = s.file;
    }
  }
  const doc = { metadata: { ...metadata, total_size: total }, weight_map: weightMap };
  const path = join(dir, "model.safetensors.index.json");
  try {
    await writeFile(path, JSON.stringify(doc, null, 2) + "\n");
  } catch (err) {
    throw new StorageError(`write index ${path}: ${(err as Error).message}`, { cause: err, retryable: true });
  }
}
