/** Helpers shared by the storage tests: fixture location, temp dirs, hand-made safetensors files. */
import { arithFixtures } from "../testing/repo-paths.js";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The arith-llama fixtures: $MERGELOOM_FIXTURES, else the repository's fixtures/. */
export const fixtureDir = arithFixtures;

export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "mergeloom-storage-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A safetensors file from a raw header object (written as given, unvalidated) and data bytes. */
export function safetensorsBytes(header: unknown, data: Uint8Array | number, opts: { declaredLength?: bigint } = {}): Buffer {
  const json = Buffer.from(typeof header === "string" ? header : JSON.stringify(header), "utf8");
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(opts.declaredLength ?? BigInt(json.byteLength));
  const body = typeof data === "number" ? Buffer.alloc(data) : Buffer.from(data);
  return Buffer.concat([prefix, json, body]);
}

export async function writeSafetensors(path: string, header: unknown, data: Uint8Array | number, opts: { declaredLength?: bigint } = {}): Promise<void> {
  await writeFile(path, safetensorsBytes(header, data, opts));
}
