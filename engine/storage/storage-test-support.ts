/** Helpers shared by the storage tests: fixture location, temp dirs, hand-made safetensors files. */
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The arith-llama fixtures: $MERGELOOM_FIXTURES, else the repository's fixtures/ above this file. */
export function fixtureDir(): string {
  if (process.env.MERGELOOM_FIXTURES) return join(process.env.MERGELOOM_FIXTURES, "arith-llama");
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "fixtures", "arith-llama");
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error("arith-llama fixtures not found; set MERGELOOM_FIXTURES to the fixtures directory");
    dir = parent;
  }
}

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
