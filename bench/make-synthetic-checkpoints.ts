/**
 * Writes N related synthetic Llama-shaped bf16 checkpoints for benchmarks: model-0 is the base,
 * model-i = base + a small seeded delta (about a tenth of the weights' scale), so TIES elects real
 * signs and slerp sees nearly colinear tensors, as with fine-tunes of one base. The default shape
 * is TinyLlama's (hidden 2048, intermediate 5632, 32 heads, 4 KV heads, vocab 32000); the layer
 * count is chosen so each checkpoint holds at least `sizeGb` GB (2.0 gives TinyLlama's 22 layers).
 *
 * Deterministic (same parameters → same bytes) and fast: values are drawn from two fixed pools of
 * random floats at per-tensor offsets, converted in 8 MB chunks and written with large writes.
 * A directory that already holds checkpoints made with the same parameters is left alone.
 *
 *   node bench/dist/make-synthetic-checkpoints.js --size-gb 1.0 --models 3 [--dir .bench]
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { buildSafetensorsHeader, type HeaderEntryInput } from "@mergeloom/engine/tensor";
import { hashKey } from "@mergeloom/engine/tensor";

export interface SyntheticOptions {
  /** Minimum bytes of tensor data per checkpoint, in GB (1e9 bytes). */
  sizeGb: number;
  models: number;
  /** Parent directory; the set goes to `<dir>/synthetic-<size>gb-h<hidden>-n<models>`. */
  dir: string;
  hidden?: number;
  intermediate?: number;
  vocab?: number;
  heads?: number;
  kvHeads?: number;
  seed?: number;
}

export interface SyntheticSet {
  /** The set's directory. */
  dir: string;
  /** Checkpoint directories, base first. */
  paths: string[];
  numLayers: number;
  /** Bytes of tensor data in one checkpoint. */
  bytesPerModel: number;
  /** False when an existing set was reused. */
  created: boolean;
}

const POOL = 4_194_301; // prime, so tensor sizes never line up with the pool period
const CHUNK = 1 << 22; // elements converted and written per write call (8 MB of bf16)

function llamaTensors(h: number, inter: number, vocab: number, heads: number, kvHeads: number, layers: number): HeaderEntryInput[] {
  const kv = (h / heads) * kvHeads;
  const t: HeaderEntryInput[] = [{ name: "model.embed_tokens.weight", dtype: "BF16", shape: [vocab, h] }];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    t.push(
      { name: `${p}input_layernorm.weight`, dtype: "BF16", shape: [h] },
      { name: `${p}self_attn.q_proj.weight`, dtype: "BF16", shape: [h, h] },
      { name: `${p}self_attn.k_proj.weight`, dtype: "BF16", shape: [kv, h] },
      { name: `${p}self_attn.v_proj.weight`, dtype: "BF16", shape: [kv, h] },
      { name: `${p}self_attn.o_proj.weight`, dtype: "BF16", shape: [h, h] },
      { name: `${p}post_attention_layernorm.weight`, dtype: "BF16", shape: [h] },
      { name: `${p}mlp.gate_proj.weight`, dtype: "BF16", shape: [inter, h] },
      { name: `${p}mlp.up_proj.weight`, dtype: "BF16", shape: [inter, h] },
      { name: `${p}mlp.down_proj.weight`, dtype: "BF16", shape: [h, inter] },
    );
  }
  t.push({ name: "model.norm.weight", dtype: "BF16", shape: [h] }, { name: "lm_head.weight", dtype: "BF16", shape: [vocab, h] });
  return t;
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** A pool of roughly normal values (sum of four uniforms), std ≈ `std`, from a seeded xorshift. */
function makePool(seed: number, std: number): Float32Array {
  let [a, b, c, d] = hashKey(seed, "pool");
  const next = () => {
    const t = a ^ (a << 11);
    a = b;
    b = c;
    c = d;
    d = (d ^ (d >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    return d / 4294967296;
  };
  const pool = new Float32Array(POOL);
  const k = std * Math.sqrt(3); // var of (sum of 4 U(0,1)) - 2 is 1/3
  for (let i = 0; i < POOL; i++) pool[i] = (next() + next() + next() + next() - 2) * k;
  return pool;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bf16(v: number): number {
  f32[0] = v;
  const b = u32[0];
  return (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
}

export function makeSyntheticCheckpoints(o: SyntheticOptions): SyntheticSet {
  const h = o.hidden ?? 2048;
  const inter = o.intermediate ?? 5632;
  const vocab = o.vocab ?? 32000;
  const heads = o.heads ?? 32;
  const kvHeads = o.kvHeads ?? 4;
  const seed = o.seed ?? 1;
  const fixed = numelOf2(llamaTensors(h, inter, vocab, heads, kvHeads, 0));
  const perLayer = numelOf2(llamaTensors(h, inter, vocab, heads, kvHeads, 1)) - fixed;
  const layers = Math.max(1, Math.ceil((o.sizeGb * 1e9) / 2 / perLayer - fixed / perLayer));
  const entries = llamaTensors(h, inter, vocab, heads, kvHeads, layers);
  const params = { version: 1, sizeGb: o.sizeGb, models: o.models, h, inter, vocab, heads, kvHeads, seed, layers };
  const setDir = resolve(o.dir, `synthetic-${o.sizeGb}gb-h${h}-n${o.models}`);
  const paths = Array.from({ length: o.models }, (_, i) => join(setDir, `model-${i}`));
  const stamp = join(setDir, "params.json");
  const header = buildSafetensorsHeader(entries);
  const set = { dir: setDir, paths, numLayers: layers, bytesPerModel: header.dataBytes };
  if (existsSync(stamp) && readFileSync(stamp, "utf8") === JSON.stringify(params)) return { ...set, created: false };

  rmSync(setDir, { recursive: true, force: true });
  const base = makePool(seed, 0.02);
  const chunk = new Uint16Array(CHUNK);
  const chunkBytes = new Uint8Array(chunk.buffer);
  for (let m = 0; m < o.models; m++) {
    const delta = m === 0 ? undefined : makePool(seed + 1000 * m, 0.002);
    mkdirSync(paths[m], { recursive: true });
    writeFileSync(join(paths[m], "config.json"), JSON.stringify(llamaConfig(h, inter, vocab, heads, kvHeads, layers), null, 2) + "\n");
    const fd = openSync(join(paths[m], "model.safetensors"), "w");
    try {
      writeAll(fd, header.bytes, 0);
      let pos = header.bytes.byteLength;
      for (const e of entries) {
        const n = numel(e.shape);
        const norm = e.shape.length === 1; // RMSNorm weights sit around 1
        const [k0, k1] = hashKey(seed, e.name);
        let bo = k0 % POOL;
        let dof = k1 % POOL;
        for (let s = 0; s < n; s += CHUNK) {
          const len = Math.min(CHUNK, n - s);
          for (let i = 0; i < len; i++) {
            let v = base[bo] + (norm ? 1 : 0);
            if (delta) v += delta[dof];
            chunk[i] = bf16(v);
            if (++bo === POOL) bo = 0;
            if (++dof === POOL) dof = 0;
          }
          writeAll(fd, chunkBytes.subarray(0, len * 2), pos);
          pos += len * 2;
        }
      }
    } finally {
      closeSync(fd);
    }
  }
  writeFileSync(stamp, JSON.stringify(params));
  return { ...set, created: true };
}

function numelOf2(entries: HeaderEntryInput[]): number {
  return entries.reduce((a, e) => a + numel(e.shape), 0);
}

function writeAll(fd: number, b: Uint8Array, pos: number): void {
  let done = 0;
  while (done < b.byteLength) done += writeSync(fd, b, done, b.byteLength - done, pos + done);
}

function llamaConfig(h: number, inter: number, vocab: number, heads: number, kvHeads: number, layers: number): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: h,
    intermediate_size: inter,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: h / heads,
    num_hidden_layers: layers,
    vocab_size: vocab,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    hidden_act: "silu",
    tie_word_embeddings: false,
    torch_dtype: "bfloat16",
  };
}

export function parseFlag(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** The repository root (this file lives in bench/ or bench/dist/). */
export function repoRoot(): string {
  const here = fileURLToPath(new URL(".", import.meta.url));
  return resolve(here, here.includes(`${"/dist/"}`) ? "../.." : "..");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const argv = process.argv.slice(2);
  const t0 = performance.now();
  const r = makeSyntheticCheckpoints({
    sizeGb: Number(parseFlag(argv, "--size-gb") ?? "1"),
    models: Number(parseFlag(argv, "--models") ?? "3"),
    dir: parseFlag(argv, "--dir") ?? join(repoRoot(), ".bench"),
    hidden: parseFlag(argv, "--hidden") ? Number(parseFlag(argv, "--hidden")) : undefined,
    intermediate: parseFlag(argv, "--intermediate") ? Number(parseFlag(argv, "--intermediate")) : undefined,
  });
  const secs = (performance.now() - t0) / 1000;
  console.log(
    `${r.created ? "wrote" : "kept"} ${r.paths.length} checkpoints of ${(r.bytesPerModel / 1e9).toFixed(2)} GB (${r.numLayers} layers) in ${secs.toFixed(1)} s: ${r.paths.join(", ")}`,
  );
}
