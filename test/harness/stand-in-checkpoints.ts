/**
 * Tiny stand-in checkpoints with the real tensor names, config.json and tokenizer files of each
 * architecture the config corpus uses, so real published mergekit configs can be planned, merged
 * and loaded in seconds: Llama (untied, or tied like Llama-3.2-1B), Mistral, Qwen2 (q/k/v biases),
 * Gemma2 (tied embeddings, four norms per layer), Phi-3 (fused qkv_proj and gate_up_proj), and PEFT
 * LoRA adapters for `model+adapter` references. Checkpoints of 80 layers or more are written as
 * four shards with an index, like the 70B models they stand in for.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildSafetensorsHeader } from "@mergeloom/engine/tensor";
import { mulberry32 } from "./mulberry32.js";

export type StandInArch = "llama" | "llama-tied" | "mistral" | "qwen2" | "gemma2" | "phi3";

export interface StandInSpec {
  arch: StandInArch;
  layers: number;
}

export interface LoraStandInSpec {
  arch: "lora";
  /** The architecture the adapter applies to. */
  of: StandInArch;
  layers: number;
}

/** Dimensions shared by every stand-in: small enough for a 140-layer merge in a second. */
export const STAND_IN_DIMS = { hidden: 16, heads: 2, kvHeads: 1, headDim: 8, intermediate: 32, vocab: 32, loraRank: 2 } as const;

interface TensorDef {
  name: string;
  shape: number[];
  /** Norm weights sit around 1 (Gemma's around 0: it adds 1 itself). */
  kind: "matrix" | "norm" | "bias";
}

const D = STAND_IN_DIMS;

/** Per-layer tensor suffixes and shapes of an architecture. */
function layerTensors(arch: StandInArch): TensorDef[] {
  const q = D.heads * D.headDim;
  const kv = D.kvHeads * D.headDim;
  const norm = (name: string): TensorDef => ({ name, shape: [D.hidden], kind: "norm" });
  const mat = (name: string, rows: number, cols: number): TensorDef => ({ name, shape: [rows, cols], kind: "matrix" });
  if (arch === "phi3") {
    return [
      norm("input_layernorm.weight"),
      mat("self_attn.qkv_proj.weight", q + 2 * kv, D.hidden),
      mat("self_attn.o_proj.weight", D.hidden, q),
      norm("post_attention_layernorm.weight"),
      mat("mlp.gate_up_proj.weight", 2 * D.intermediate, D.hidden),
      mat("mlp.down_proj.weight", D.hidden, D.intermediate),
    ];
  }
  const out: TensorDef[] = [
    norm("input_layernorm.weight"),
    mat("self_attn.q_proj.weight", q, D.hidden),
    mat("self_attn.k_proj.weight", kv, D.hidden),
    mat("self_attn.v_proj.weight", kv, D.hidden),
    mat("self_attn.o_proj.weight", D.hidden, q),
    norm("post_attention_layernorm.weight"),
    mat("mlp.gate_proj.weight", D.intermediate, D.hidden),
    mat("mlp.up_proj.weight", D.intermediate, D.hidden),
    mat("mlp.down_proj.weight", D.hidden, D.intermediate),
  ];
  if (arch === "qwen2") {
    out.push(
      { name: "self_attn.q_proj.bias", shape: [q], kind: "bias" },
      { name: "self_attn.k_proj.bias", shape: [kv], kind: "bias" },
      { name: "self_attn.v_proj.bias", shape: [kv], kind: "bias" },
    );
  }
  if (arch === "gemma2") out.push(norm("pre_feedforward_layernorm.weight"), norm("post_feedforward_layernorm.weight"));
  return out;
}

const TIED: ReadonlySet<StandInArch> = new Set(["llama-tied", "gemma2"]);

/** Every tensor name a checkpoint of `arch` with `layers` layers has (the expected set of a merge). */
export function standInTensorNames(arch: StandInArch, layers: number): string[] {
  const names = ["model.embed_tokens.weight"];
  for (let i = 0; i < layers; i++) for (const t of layerTensors(arch)) names.push(`model.layers.${i}.${t.name}`);
  names.push("model.norm.weight");
  if (!TIED.has(arch)) names.push("lm_head.weight");
  return names;
}

function allTensors(arch: StandInArch, layers: number): TensorDef[] {
  const out: TensorDef[] = [{ name: "model.embed_tokens.weight", shape: [D.vocab, D.hidden], kind: "matrix" }];
  for (let i = 0; i < layers; i++) for (const t of layerTensors(arch)) out.push({ ...t, name: `model.layers.${i}.${t.name}` });
  out.push({ name: "model.norm.weight", shape: [D.hidden], kind: "norm" });
  if (!TIED.has(arch)) out.push({ name: "lm_head.weight", shape: [D.vocab, D.hidden], kind: "matrix" });
  return out;
}

/** Seeded uniform [0, 1) stream, so every run makes the same data. */
const rng = mulberry32;

function bf16Bytes(values: Float32Array): Buffer {
  const u = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16;
  return Buffer.from(out.buffer);
}

function values(t: TensorDef, arch: StandInArch | "lora", next: () => number): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  // Sums of uniforms: roughly normal, with init-like scales (1/sqrt(fan-in) for matrices).
  const scale = t.kind === "matrix" ? 1 / Math.sqrt(t.shape[t.shape.length - 1]) : 0.05;
  const centre = t.kind === "norm" && arch !== "gemma2" ? 1 : 0;
  for (let i = 0; i < n; i++) v[i] = centre + scale * (next() + next() + next() - 1.5) * 2;
  return v;
}

async function writeSafetensors(file: string, tensors: { name: string; shape: number[]; data: Buffer }[]): Promise<void> {
  const { bytes } = buildSafetensorsHeader(tensors.map((t) => ({ name: t.name, dtype: "BF16", shape: t.shape })));
  await writeFile(file, Buffer.concat([bytes, ...tensors.map((t) => t.data)]));
}

function hfConfig(arch: StandInArch, layers: number): Record<string, unknown> {
  const common = {
    hidden_size: D.hidden,
    intermediate_size: D.intermediate,
    num_attention_heads: D.heads,
    num_key_value_heads: D.kvHeads,
    head_dim: D.headDim,
    num_hidden_layers: layers,
    vocab_size: D.vocab,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: "bfloat16",
    tie_word_embeddings: TIED.has(arch),
    initializer_range: 0.02,
    use_cache: true,
  };
  switch (arch) {
    case "llama":
    case "llama-tied":
      return { architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_act: "silu", attention_bias: false, mlp_bias: false, ...common };
    case "mistral":
      return { architectures: ["MistralForCausalLM"], model_type: "mistral", hidden_act: "silu", sliding_window: null, ...common };
    case "qwen2":
      return { architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", hidden_act: "silu", use_sliding_window: false, ...common };
    case "gemma2":
      return {
        architectures: ["Gemma2ForCausalLM"],
        model_type: "gemma2",
        hidden_activation: "gelu_pytorch_tanh",
        query_pre_attn_scalar: D.headDim,
        final_logit_softcapping: 30.0,
        attn_logit_softcapping: 50.0,
        sliding_window: 4096,
        pad_token_id: 0,
        ...common,
      };
    case "phi3":
      return {
        architectures: ["Phi3ForCausalLM"],
        model_type: "phi3",
        hidden_act: "silu",
        original_max_position_embeddings: 64,
        ...common,
        head_dim: undefined,
      };
  }
}

/** A word-level tokenizer over the 32-token vocabulary, loadable by transformers and @huggingface/tokenizers. */
async function writeTokenizer(dir: string): Promise<void> {
  const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  for (let i = 3; i < D.vocab; i++) vocab[`w${i}`] = i;
  const special = (content: string, id: number) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [special("<unk>", 0), special("<s>", 1), special("</s>", 2)],
    normalizer: null,
    pre_tokenizer: { type: "Whitespace" },
    post_processor: null,
    decoder: null,
    model: { type: "WordLevel", vocab, unk_token: "<unk>" },
  };
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  await writeFile(
    join(dir, "tokenizer_config.json"),
    JSON.stringify({ tokenizer_class: "PreTrainedTokenizerFast", bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>", model_max_length: 64 }),
  );
  await writeFile(join(dir, "special_tokens_map.json"), JSON.stringify({ bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>" }));
}

/** Writes a stand-in checkpoint into `dir`; `seed` makes models of one architecture differ. */
export async function writeStandIn(dir: string, spec: StandInSpec, seed: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const next = rng(seed);
  const tensors = allTensors(spec.arch, spec.layers).map((t) => ({ name: t.name, shape: t.shape, data: bf16Bytes(values(t, spec.arch, next)) }));
  if (spec.layers >= 80) {
    const shards = 4;
    const per = Math.ceil(tensors.length / shards);
    const weightMap: Record<string, string> = {};
    let total = 0;
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`;
      const part = tensors.slice(s * per, (s + 1) * per);
      for (const t of part) {
        weightMap[t.name] = file;
        total += t.data.byteLength;
      }
      await writeSafetensors(join(dir, file), part);
    }
    await writeFile(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  } else {
    await writeSafetensors(join(dir, "model.safetensors"), tensors);
  }
  await writeFile(join(dir, "config.json"), JSON.stringify(hfConfig(spec.arch, spec.layers), null, 2));
  await writeTokenizer(dir);
}

/** A PEFT LoRA adapter (q_proj and v_proj of every layer) for a stand-in of `spec.of`. */
export async function writeLoraStandIn(dir: string, spec: LoraStandInSpec, seed: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  if (spec.of === "phi3") throw new Error("stand-in LoRA adapters target q_proj/v_proj, which Phi-3 fuses");
  const next = rng(seed);
  const tensors: { name: string; shape: number[]; data: Buffer }[] = [];
  const outDims = { q_proj: D.heads * D.headDim, v_proj: D.kvHeads * D.headDim };
  for (let i = 0; i < spec.layers; i++) {
    for (const [m, out] of Object.entries(outDims)) {
      const prefix = `base_model.model.model.layers.${i}.self_attn.${m}`;
      const a: TensorDef = { name: `${prefix}.lora_A.weight`, shape: [D.loraRank, D.hidden], kind: "matrix" };
      const b: TensorDef = { name: `${prefix}.lora_B.weight`, shape: [out, D.loraRank], kind: "matrix" };
      for (const t of [a, b]) tensors.push({ name: t.name, shape: t.shape, data: bf16Bytes(values(t, "lora", next)) });
    }
  }
  await writeSafetensors(join(dir, "adapter_model.safetensors"), tensors);
  await writeFile(
    join(dir, "adapter_config.json"),
    JSON.stringify(
      {
        peft_type: "LORA",
        task_type: "CAUSAL_LM",
        r: D.loraRank,
        lora_alpha: 2 * D.loraRank,
        lora_dropout: 0,
        target_modules: ["q_proj", "v_proj"],
        fan_in_fan_out: false,
        bias: "none",
        use_rslora: false,
      },
      null,
      2,
    ),
  );
}
