/** Copies a single-file safetensors checkpoint with its tensors edited (dropped, renamed, retyped) for tests. */
import { copyFile, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildSafetensorsHeader } from "@mergeloom/engine/tensor";
import type { DType } from "@mergeloom/proto/dtype";

export interface RawTensor {
  name: string;
  dtype: DType;
  shape: number[];
  data: Buffer;
}

/** Reads every tensor of a single-file checkpoint (an independent parse: plain JSON + offsets). */
export async function readRawTensors(file: string): Promise<RawTensor[]> {
  const buf = await readFile(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<string, { dtype: DType; shape: number[]; data_offsets: [number, number] }>;
  return Object.entries(header)
    .filter(([k]) => k !== "__metadata__")
    .map(([name, e]) => ({ name, dtype: e.dtype, shape: e.shape, data: Buffer.from(buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1])) }));
}

export function encodeSafetensors(tensors: readonly RawTensor[]): Buffer {
  const { bytes } = buildSafetensorsHeader(tensors);
  return Buffer.concat([bytes, ...tensors.map((t) => t.data)]);
}

/**
 * Writes `dst` as a copy of the model directory `src` (config, tokenizer files) whose
 * model.safetensors holds `edit(tensors)`; `config` edits config.json.
 */
export async function rewriteCheckpoint(
  src: string,
  dst: string,
  edit: (tensors: RawTensor[]) => RawTensor[],
  config?: (c: Record<string, unknown>) => Record<string, unknown>,
): Promise<string> {
  await mkdir(dst, { recursive: true });
  for (const f of await readdir(src)) {
    if (f.endsWith(".safetensors") || f === "model.safetensors.index.json") continue;
    await copyFile(join(src, f), join(dst, f));
  }
  if (config) await writeFile(join(dst, "config.json"), JSON.stringify(config(JSON.parse(await readFile(join(src, "config.json"), "utf8")))));
  await writeFile(join(dst, "model.safetensors"), encodeSafetensors(edit(await readRawTensors(join(src, "model.safetensors")))));
  return dst;
}
