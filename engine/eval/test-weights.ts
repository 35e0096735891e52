/**
 * Test-only: reads a fixture checkpoint (single file or sharded with an index) into fp32 weights.
 * The real checkpoint reader lives in engine/storage; this keeps the eval tests independent of it.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { arithFixtures } from "../testing/repo-paths.js";
import { parseHeaderLength, parseSafetensorsHeader } from "../tensor/safetensors.js";
import { decodeToF32 } from "../tensor/convert.js";
import type { WeightTensor } from "./onnx-evaluator.js";

/** The repository's copy of the arith-llama fixtures. */
export const FIXTURE = arithFixtures() + "/";

export function readSafetensorsF32(file: string, into = new Map<string, WeightTensor>()): Map<string, WeightTensor> {
  const buf = readFileSync(file);
  const n = parseHeaderLength(file, buf, buf.byteLength);
  const header = parseSafetensorsHeader(file, buf.subarray(8, 8 + n), buf.byteLength);
  for (const t of header.tensors.values()) {
    into.set(t.name, { data: decodeToF32(buf.subarray(t.offset, t.offset + t.byteLength), t.dtype), shape: t.shape });
  }
  return into;
}

export function readCheckpointF32(dir: string): Map<string, WeightTensor> {
  const index = join(dir, "model.safetensors.index.json");
  if (!existsSync(index)) return readSafetensorsF32(join(dir, "model.safetensors"));
  const map = JSON.parse(readFileSync(index, "utf8")) as { weight_map: Record<string, string> };
  const out = new Map<string, WeightTensor>();
  for (const f of new Set(Object.values(map.weight_map))) readSafetensorsF32(join(dir, f), out);
  return out;
}
