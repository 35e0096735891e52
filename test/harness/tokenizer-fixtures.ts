/**
 * Fixture experts with different vocabularies, built from fixtures/arith-llama (whose character
 * tokenizer has no tokenizer.json): a real Hugging Face BPE tokenizer.json over the same 21
 * characters (no merges, so each character is one token), and experts that add tokens with new
 * embedding and lm_head rows, as a chat fine-tune does.
 */
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildSafetensorsHeader } from "@mergeloom/engine/tensor";
import type { DType } from "@mergeloom/proto/dtype";
import { FIXTURES } from "./repo-root.js";

export interface StoredTensor {
  dtype: DType;
  shape: number[];
  bytes: Buffer;
}

export async function readSafetensors(file: string): Promise<Map<string, StoredTensor>> {
  const buf = await readFile(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<string, { dtype: DType; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, StoredTensor>();
  for (const [name, e] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    out.set(name, { dtype: e.dtype, shape: e.shape, bytes: buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]) });
  }
  return out;
}

export async function writeSafetensors(file: string, tensors: Map<string, StoredTensor>): Promise<void> {
  const entries = [...tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape }));
  const { bytes } = buildSafetensorsHeader(entries);
  await writeFile(file, Buffer.concat([bytes, ...[...tensors.values()].map((t) => t.bytes)]));
}

/** bf16 bits → number. */
export function bf16(bits: number): number {
  return new Float32Array(new Uint32Array([bits << 16]).buffer)[0];
}

export function rowOf(t: StoredTensor, row: number): number[] {
  const cols = t.shape[1];
  const u16 = new Uint16Array(t.bytes.buffer.slice(t.bytes.byteOffset, t.bytes.byteOffset + t.bytes.byteLength));
  return Array.from(u16.subarray(row * cols, (row + 1) * cols), bf16);
}

interface Added {
  content: string;
  special: boolean;
}

function tokenizerJson(vocab: Record<string, number>, added: Added[]): Record<string, unknown> {
  const specials: Added[] = [
    { content: "<pad>", special: true },
    { content: "<bos>", special: true },
    { content: "<eos>", special: true },
  ];
  const base = Object.keys(vocab).length;
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [...specials.map((a) => ({ id: vocab[a.content], ...a })), ...added.map((a, i) => ({ id: base + i, ...a }))].map((a) => ({
      id: a.id,
      content: a.content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: !a.special,
      special: a.special,
    })),
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

/**
 * Writes a checkpoint from fixture `from` into `dir` with `added` tokens: embed_tokens and lm_head
 * get one new row per token (row i of the new block = `0.01·(i+1)·(1, -1, 1, …)` + the <eos> row,
 * exact in bf16 up to rounding), config vocab_size grows, and a tokenizer.json/tokenizer_config.json
 * describe the vocabulary.
 */
export async function writeTokenizerExpert(from: string, dir: string, added: Added[]): Promise<string> {
  await mkdir(dir, { recursive: true });
  const vocab = JSON.parse(await readFile(join(FIXTURES, from, "vocab.json"), "utf8")) as Record<string, number>;
  const tensors = await readSafetensors(join(FIXTURES, from, "model.safetensors"));
  for (const name of ["model.embed_tokens.weight", "lm_head.weight"]) {
    const t = tensors.get(name)!;
    const cols = t.shape[1];
    const extra = new Float32Array(added.length * cols);
    const eos = rowOf(t, 2);
    for (let i = 0; i < added.length; i++) for (let j = 0; j < cols; j++) extra[i * cols + j] = eos[j] + 0.01 * (i + 1) * (j % 2 ? -1 : 1);
    const u32 = new Uint32Array(extra.buffer);
    const bits = new Uint16Array(extra.length);
    for (let k = 0; k < extra.length; k++) bits[k] = (u32[k] + 0x7fff + ((u32[k] >>> 16) & 1)) >>> 16;
    tensors.set(name, { dtype: t.dtype, shape: [t.shape[0] + added.length, cols], bytes: Buffer.concat([t.bytes, Buffer.from(bits.buffer)]) });
  }
  await writeSafetensors(join(dir, "model.safetensors"), tensors);
  const cfg = JSON.parse(await readFile(join(FIXTURES, from, "config.json"), "utf8")) as Record<string, unknown>;
  cfg.vocab_size = Object.keys(vocab).length + added.length;
  await writeFile(join(dir, "config.json"), JSON.stringify(cfg, null, 2));
  await copyFile(join(FIXTURES, from, "generation_config.json"), join(dir, "generation_config.json"));
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(tokenizerJson(vocab, added), null, 2));
  await writeFile(
    join(dir, "tokenizer_config.json"),
    JSON.stringify({ tokenizer_class: "PreTrainedTokenizerFast", bos_token: "<bos>", eos_token: "<eos>", pad_token: "<pad>", model_max_length: 32 }, null, 2),
  );
  await writeFile(join(dir, "special_tokens_map.json"), JSON.stringify({ bos_token: "<bos>", eos_token: "<eos>", pad_token: "<pad>" }, null, 2));
  return dir;
}

/** base (no added tokens), chat (`<|im_start|>`, `<|im_end|>` special), tool (`<tool>` plain) under `root`. */
export async function writeUnionFixture(root: string): Promise<{ base: string; chat: string; tool: string }> {
  return {
    base: await writeTokenizerExpert("base", join(root, "base"), []),
    chat: await writeTokenizerExpert("expert-add", join(root, "chat"), [
      { content: "<|im_start|>", special: true },
      { content: "<|im_end|>", special: true },
    ]),
    tool: await writeTokenizerExpert("expert-mul", join(root, "tool"), [{ content: "<tool>", special: false }]),
  };
}
