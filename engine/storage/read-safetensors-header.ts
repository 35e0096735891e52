/** Reads and validates a safetensors header through a ByteSource: 8 bytes plus the header, no tensor data. */
import { parseHeaderLength, parseSafetensorsHeader, type SafetensorsHeader } from "../tensor/safetensors.js";
import type { ByteSource } from "./byte-source.js";

export async function readSafetensorsHeader(source: ByteSource): Promise<SafetensorsHeader & { fileSize: number }> {
  const fileSize = await source.size();
  const prefix = await source.read(0, Math.min(8, fileSize));
  const n = parseHeaderLength(source.uri, prefix, fileSize);
  const json = await source.read(8, n);
  return { ...parseSafetensorsHeader(source.uri, json, fileSize), fileSize };
}
