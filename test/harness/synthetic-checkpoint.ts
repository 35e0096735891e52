/** Writes small seeded checkpoints (and deliberately broken ones) for tests. */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildSafetensorsHeader } from "@mergeloom/engine/tensor";
import type { DType } from "@mergeloom/proto/dtype";

export interface FakeTensor {
  name: string;
  dtype: DType;
  shape: number[];
  /** Values (converted to dtype); defaults to a seeded ramp. */
  values?: number[];
}

function encode(t: FakeTensor, seed: number): Buffer {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const vals = t.values ?? Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 0.37) * 0.05);
  if (t.dtype === "F32") return Buffer.from(new Float32Array(vals).buffer);
  if (t.dtype === "BF16") {
    const f = new Float32Array(vals);
    const u = new Uint32Array(f.buffer);
    const out = new Uint16Array(n);
    for (let i = 0; i < n; i++) out[i] = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16;
    return Buffer.from(out.buffer);
  }
  throw new Error(`fake tensor dtype ${t.dtype} not supported`);
}

/** A valid single-file checkpoint with a Llama-style config.json. */
export async function writeFakeCheckpoint(dir: string, tensors: FakeTensor[], opts: { seed?: number; numLayers?: number } = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  const { bytes } = buildSafetensorsHeader(tensors);
  const data = Buffer.concat(tensors.map((t) => encode(t, opts.seed ?? 1)));
  await writeFile(join(dir, "model.safetensors"), Buffer.concat([bytes, data]));
  await writeFile(
    join(dir, "config.json"),
    JSON.stringify({ architectures: ["LlamaForCausalLM"], model_type: "llama", num_hidden_layers: opts.numLayers ?? 1 }),
  );
  return dir;
}

/** A tiny one-layer Llama-shaped tensor list. */
export function tinyLlamaTensors(hidden = 8, dtype: DType = "BF16"): FakeTensor[] {
  return [
    { name: "model.embed_tokens.weight", dtype, shape: [5, hidden] },
    { name: "model.layers.0.input_layernorm.weight", dtype, shape: [hidden] },
    { name: "model.layers.0.mlp.up_proj.weight", dtype, shape: [2 * hidden, hidden] },
    { name: "model.norm.weight", dtype, shape: [hidden] },
    { name: "lm_head.weight", dtype, shape: [5, hidden] },
  ];
}

/** Writes raw bytes as model.safetensors (for corrupt-header cases). */
export async function writeRawCheckpoint(dir: string, header: unknown, dataBytes: number, opts: { lengthOverride?: bigint } = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.lengthOverride ?? BigInt(json.byteLength));
  await writeFile(join(dir, "model.safetensors"), Buffer.concat([len, json, Buffer.alloc(dataBytes)]));
  await writeFile(join(dir, "config.json"), JSON.stringify({ model_type: "llama", num_hidden_layers: 1 }));
  return dir;
}
