/**
 * Synthetic checkpoints for rehearsing big merges without the disk: `synthetic://llama-70b?seed=N`
 * has Llama-3-70B's tensor names, shapes and dtype (bf16) and generates its bytes on the fly from
 * (seed, byte position), deterministically, at memory speed. Models with different seeds are
 * "fine-tunes" of one shared base: the same values with the low mantissa bits perturbed, so TIES,
 * DARE and slerp see realistic small task vectors.
 */
import { StorageError } from "../errors/index.js";
import { DTYPE_BYTES, numelOf } from "@mergeloom/proto/dtype";
import type { ByteSource } from "./byte-source.js";
import type { Checkpoint, CheckpointTensor } from "./checkpoint.js";

interface Preset {
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
}

export const SYNTHETIC_PRESETS: Record<string, Preset> = {
  "llama-70b": { vocab: 128256, hidden: 8192, intermediate: 28672, layers: 80, heads: 64, kvHeads: 8 },
  "llama-8b": { vocab: 128256, hidden: 4096, intermediate: 14336, layers: 32, heads: 32, kvHeads: 8 },
  "llama-tiny": { vocab: 256, hidden: 64, intermediate: 176, layers: 4, heads: 4, kvHeads: 2 },
};

interface SyntheticSpec {
  uri: string;
  preset: string;
  p: Preset;
  seed: number;
}

export function isSyntheticUri(uri: string): boolean {
  return uri.startsWith("synthetic://");
}

/** Parses `synthetic://<preset>?seed=N[&layers=L]`; the URI (as written) is the one virtual file. */
export function parseSyntheticUri(uri: string): SyntheticSpec {
  const m = /^synthetic:\/\/([a-z0-9-]+)(?:\?(.*))?$/.exec(uri);
  const preset = m?.[1];
  if (!m || !preset || !SYNTHETIC_PRESETS[preset]) {
    throw new StorageError(
      `open ${uri}: unknown synthetic model (known: ${Object.keys(SYNTHETIC_PRESETS)
        .map((k) => `synthetic://${k}?seed=N`)
        .join(", ")})`,
    );
  }
  const q = new URLSearchParams(m[2] ?? "");
  for (const k of q.keys()) if (k !== "seed" && k !== "layers") throw new StorageError(`open ${uri}: unknown parameter '${k}' (known: seed, layers)`);
  const seed = Number(q.get("seed") ?? "0");
  const layers = q.has("layers") ? Number(q.get("layers")) : SYNTHETIC_PRESETS[preset].layers;
  if (!Number.isSafeInteger(seed) || seed < 0 || !Number.isSafeInteger(layers) || layers < 1) {
    throw new StorageError(`open ${uri}: seed and layers must be non-negative integers (layers >= 1)`);
  }
  return { uri, preset, p: { ...SYNTHETIC_PRESETS[preset], layers }, seed };
}

function tensorList(p: Preset): Array<{ name: string; shape: number[] }> {
  const head = p.hidden / p.heads;
  const kv = head * p.kvHeads;
  const out = [{ name: "model.embed_tokens.weight", shape: [p.vocab, p.hidden] }];
  for (let i = 0; i < p.layers; i++) {
    const l = `model.layers.${i}.`;
    out.push(
      { name: `${l}input_layernorm.weight`, shape: [p.hidden] },
      { name: `${l}self_attn.q_proj.weight`, shape: [p.hidden, p.hidden] },
      { name: `${l}self_attn.k_proj.weight`, shape: [kv, p.hidden] },
      { name: `${l}self_attn.v_proj.weight`, shape: [kv, p.hidden] },
      { name: `${l}self_attn.o_proj.weight`, shape: [p.hidden, p.hidden] },
      { name: `${l}post_attention_layernorm.weight`, shape: [p.hidden] },
      { name: `${l}mlp.gate_proj.weight`, shape: [p.intermediate, p.hidden] },
      { name: `${l}mlp.up_proj.weight`, shape: [p.intermediate, p.hidden] },
      { name: `${l}mlp.down_proj.weight`, shape: [p.hidden, p.intermediate] },
    );
  }
  out.push({ name: "model.norm.weight", shape: [p.hidden] }, { name: "lm_head.weight", shape: [p.vocab, p.hidden] });
  return out;
}

/** Header-only view of a synthetic model: the same shape of object openCheckpoint returns. */
export function openSyntheticCheckpoint(uri: string): Checkpoint {
  const spec = parseSyntheticUri(uri);
  const tensors = new Map<string, CheckpointTensor>();
  let offset = 0;
  for (const t of tensorList(spec.p)) {
    const byteLength = numelOf(t.shape) * DTYPE_BYTES.BF16;
    tensors.set(t.name, { name: t.name, dtype: "BF16", shape: t.shape, uri, offset, byteLength });
    offset += byteLength;
  }
  const p = spec.p;
  return {
    ref: uri,
    location: uri,
    files: [uri],
    tensors,
    config: {
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      hidden_size: p.hidden,
      intermediate_size: p.intermediate,
      num_hidden_layers: p.layers,
      num_attention_heads: p.heads,
      num_key_value_heads: p.kvHeads,
      vocab_size: p.vocab,
      rms_norm_eps: 1e-5,
      rope_theta: 500000,
      torch_dtype: "bfloat16",
      tie_word_embeddings: false,
    },
  };
}

/** Norm tensors sit around 1.0; everything else around ±0.01, like trained weights. */
function normRanges(uri: string): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  for (const t of openSyntheticCheckpoint(uri).tensors.values()) if (t.shape.length === 1) ranges.push([t.offset, t.offset + t.byteLength]);
  return ranges;
}

export class SyntheticByteSource implements ByteSource {
  readonly uri: string;
  private readonly seed: number;
  private readonly total: number;
  private readonly norms: Array<[number, number]>;
  constructor(uri: string) {
    this.uri = uri;
    const spec = parseSyntheticUri(uri);
    this.seed = spec.seed;
    const ck = openSyntheticCheckpoint(uri);
    let total = 0;
    for (const t of ck.tensors.values()) total = Math.max(total, t.offset + t.byteLength);
    this.total = total;
    this.norms = normRanges(uri);
  }
  async size(): Promise<number> {
    return this.total;
  }
  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (offset % 2 || length % 2) throw new StorageError(`read ${this.uri}: synthetic reads must be aligned to 2-byte elements`);
    if (offset + length > this.total) throw new StorageError(`read ${this.uri}: range ${offset}+${length} is past the end (${this.total} bytes)`);
    const out = into && into.byteLength >= length ? into.subarray(0, length) : new Uint8Array(length);
    fillSynthetic(out, offset / 2, this.seed, this.isNorm(offset));
    return out;
  }
  private isNorm(offset: number): boolean {
    for (const [a, b] of this.norms) if (offset >= a && offset < b) return true;
    return false;
  }
  async close(): Promise<void> {}
}

/**
 * Element e's bf16 bits: a hash of e gives the shared base value (sign, an exponent near 2^-7 or
 * 1.0 for norms, 7 mantissa bits); seed > 0 perturbs the low 2 mantissa bits for ~half the
 * elements — a small, model-specific task vector.
 */
export function fillSynthetic(out: Uint8Array, firstElement: number, seed: number, norm: boolean): void {
  const n = out.byteLength >>> 1;
  const u16 = out.byteOffset % 2 === 0 ? new Uint16Array(out.buffer, out.byteOffset, n) : undefined;
  const sm = Math.imul(seed + 1, 0x9e3779b1) | 0;
  // Elements beyond 2^32 wrap the hash input; fine for a generator, and still deterministic.
  let e = firstElement >>> 0;
  const expBase = norm ? 127 : 120;
  for (let i = 0; i < n; i++, e = (e + 1) >>> 0) {
    let h = Math.imul(e ^ 0x61c88647, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    const sign = norm ? 0 : h & 0x8000;
    const exp = expBase - ((h >>> 7) & 3);
    let mant = h & 0x7f;
    if (seed) {
      let g = Math.imul(e ^ sm, 0x27d4eb2d);
      g ^= g >>> 15;
      if (g & 0x100) mant ^= (g >>> 3) & 3;
    }
    const bits = sign | (exp << 7) | mant;
    if (u16) u16[i] = bits;
    else {
      out[2 * i] = bits & 0xff;
      out[2 * i + 1] = bits >>> 8;
    }
  }
}
