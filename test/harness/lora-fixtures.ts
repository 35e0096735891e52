/**
 * A PEFT LoRA adapter for fixtures/arith-llama/base, written the way PEFT saves one
 * (adapter_config.json + adapter_model.safetensors with `base_model.model.` keys): q_proj and
 * v_proj of every layer (v_proj at rank 2 through rank_pattern, layer 1's q_proj with its own
 * alpha through alpha_pattern), the token embedding (lora_embedding_A/B), lm_head as a module to
 * save, and an o_proj pair that target_modules does not name (PEFT ignores it).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildSafetensorsHeader } from "@mergeloom/engine/tensor";
import type { DType } from "@mergeloom/proto/dtype";
import type { StoredTensor } from "./tokenizer-fixtures.js";

/** Deterministic values in [-0.05, 0.05) (a small LCG; the test only needs them fixed). */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 0.1;
  }
  return out;
}

function toBF16(v: Float32Array): Buffer {
  const u32 = new Uint32Array(v.buffer, v.byteOffset, v.length);
  const bits = new Uint16Array(v.length);
  for (let k = 0; k < v.length; k++) bits[k] = (u32[k] + 0x7fff + ((u32[k] >>> 16) & 1)) >>> 16;
  return Buffer.from(bits.buffer);
}

function fromBF16(buf: Buffer): Float32Array {
  const bits = new Uint16Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const u32 = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) u32[i] = bits[i] << 16;
  return new Float32Array(u32.buffer);
}

export interface AdapterTensor {
  key: string;
  dtype: DType;
  shape: number[];
  values: Float32Array;
}

export interface LoraFixture {
  dir: string;
  tensors: Map<string, AdapterTensor>;
  config: Record<string, unknown>;
}

export async function writeLoraAdapter(dir: string, opts: { rslora?: boolean; layers?: number } = {}): Promise<LoraFixture> {
  await mkdir(dir, { recursive: true });
  const tensors = new Map<string, AdapterTensor>();
  let seed = 11;
  const add = (key: string, shape: number[], dtype: DType = "F32") => {
    tensors.set(key, { key, dtype, shape, values: values(shape[0] * shape[1], seed++) });
  };
  const P = "base_model.model.";
  for (let l = 0; l < (opts.layers ?? 4); l++) {
    const m = `${P}model.layers.${l}.self_attn`;
    add(`${m}.q_proj.lora_A.weight`, [4, 128]);
    add(`${m}.q_proj.lora_B.weight`, [128, 4]);
    add(`${m}.v_proj.lora_A.weight`, [2, 128]);
    add(`${m}.v_proj.lora_B.weight`, [64, 2]);
  }
  add(`${P}model.layers.0.self_attn.o_proj.lora_A.weight`, [4, 128]);
  add(`${P}model.layers.0.self_attn.o_proj.lora_B.weight`, [128, 4]);
  add(`${P}model.embed_tokens.lora_embedding_A`, [4, 21]);
  add(`${P}model.embed_tokens.lora_embedding_B`, [128, 4]);
  add(`${P}lm_head.weight`, [21, 128], "BF16");
  // The BF16 replacement's values as the file holds them.
  const lm = tensors.get(`${P}lm_head.weight`)!;
  lm.values = fromBF16(toBF16(lm.values));
  const entries = [...tensors.values()].map((t) => ({ name: t.key, dtype: t.dtype, shape: t.shape }));
  const { bytes } = buildSafetensorsHeader(entries);
  const data = [...tensors.values()].map((t) =>
    t.dtype === "BF16" ? toBF16(t.values) : Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength),
  );
  await writeFile(join(dir, "adapter_model.safetensors"), Buffer.concat([bytes, ...data]));
  const config = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: "arith-llama/base",
    r: 4,
    lora_alpha: 8,
    lora_dropout: 0,
    bias: "none",
    fan_in_fan_out: false,
    use_rslora: opts.rslora ?? false,
    use_dora: false,
    target_modules: ["q_proj", "v_proj", "embed_tokens"],
    modules_to_save: ["lm_head"],
    rank_pattern: { v_proj: 2 },
    alpha_pattern: { "model.layers.1.self_attn.q_proj": 16 },
    inference_mode: true,
  };
  await writeFile(join(dir, "adapter_config.json"), JSON.stringify(config, null, 2));
  return { dir, tensors, config };
}

/** W + scale·B·A (or (B·A)ᵀ) in float64, from the stored W and the adapter's A and B. */
export function expectedLora(w: StoredTensor, wValues: Float64Array, a: AdapterTensor, b: AdapterTensor, scale: number, transpose: boolean): Float64Array {
  const [rows, cols] = w.shape;
  const r = a.shape[0];
  const out = Float64Array.from(wValues);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += transpose ? b.values[j * r + k] * a.values[k * rows + i] : b.values[i * r + k] * a.values[k * cols + j];
      out[i * cols + j] += scale * s;
    }
  }
  return out;
}
