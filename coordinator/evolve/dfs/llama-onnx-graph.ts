/**
 * Generates an opset-14 ONNX evaluation graph for a Llama-architecture model (HF
 * `LlamaForCausalLM`, eager attention, no KV cache) with the interface of arith-llama's
 * `eval/model.onnx`: input `input_ids` int64 [batch, seq], every weight an fp32 input named like the
 * checkpoint tensor, output `logits` fp32 [batch, seq, vocab]. Layer counts differ between merges
 * (frankenmerges), so the evaluator needs a graph per architecture rather than a fixed file.
 */
import { MergeloomError } from "@mergeloom/proto/errors";
import { encodeOnnxModel, f32Bytes, i64Bytes, TensorType, type AttrValue, type NodeSpec, type TensorSpec, type ValueInfoSpec } from "./onnx-proto.js";

export interface LlamaGraphConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  /** Defaults to num_attention_heads (no GQA). */
  num_key_value_heads?: number;
  /** Defaults to hidden_size / num_attention_heads. */
  head_dim?: number;
  rms_norm_eps: number;
  rope_theta: number;
  vocab_size: number;
  /** true: no `lm_head.weight` input; logits use `model.embed_tokens.weight`. Default false. */
  tie_word_embeddings?: boolean;
}

/** Weight names and shapes the generated graph takes, in input order. */
export function llamaWeightShapes(config: LlamaGraphConfig): Array<{ name: string; shape: number[] }> {
  const c = resolve(config);
  const out: Array<{ name: string; shape: number[] }> = [{ name: "model.embed_tokens.weight", shape: [c.vocab, c.hidden] }];
  for (let i = 0; i < c.layers; i++) {
    const p = `model.layers.${i}.`;
    out.push(
      { name: `${p}input_layernorm.weight`, shape: [c.hidden] },
      { name: `${p}self_attn.q_proj.weight`, shape: [c.heads * c.headDim, c.hidden] },
      { name: `${p}self_attn.k_proj.weight`, shape: [c.kvHeads * c.headDim, c.hidden] },
      { name: `${p}self_attn.v_proj.weight`, shape: [c.kvHeads * c.headDim, c.hidden] },
      { name: `${p}self_attn.o_proj.weight`, shape: [c.hidden, c.heads * c.headDim] },
      { name: `${p}post_attention_layernorm.weight`, shape: [c.hidden] },
      { name: `${p}mlp.gate_proj.weight`, shape: [c.intermediate, c.hidden] },
      { name: `${p}mlp.up_proj.weight`, shape: [c.intermediate, c.hidden] },
      { name: `${p}mlp.down_proj.weight`, shape: [c.hidden, c.intermediate] },
    );
  }
  out.push({ name: "model.norm.weight", shape: [c.hidden] });
  if (!c.tied) out.push({ name: "lm_head.weight", shape: [c.vocab, c.hidden] });
  return out;
}

export function buildLlamaOnnxGraph(config: LlamaGraphConfig): Uint8Array {
  const c = resolve(config);
  const g = new GraphBuilder();
  const half = c.headDim / 2;

  // Constants shared by all layers.
  const invFreq = new Float32Array(half);
  // HF: 1 / theta^(arange(0, d, 2) / d), evaluated in fp32.
  for (let k = 0; k < half; k++) invFreq[k] = 1 / Math.fround(Math.pow(c.theta, Math.fround((2 * k) / c.headDim)));
  const cInvFreq = g.constF32("rope_inv_freq", [1, half], invFreq);
  const cEps = g.constF32("rms_eps", [], [c.eps]);
  const cScale = g.constF32("attn_scale", [], [1 / Math.sqrt(c.headDim)]);
  const cNegMin = g.constF32("mask_min", [], [-3.4028234663852886e38]);
  const cZero = g.constF32("zero_f", [], [0]);
  const i64 = (name: string, v: number[], dims = [v.length]) => g.constI64(name, dims, v);
  const cIdx1 = i64("idx1", [1], []);
  const cStart = i64("range_start", [0], []);
  const cStep = i64("range_step", [1], []);
  const cAx0 = i64("axes0", [0]);
  const cAx1 = i64("axes1", [1]);
  const cAx2 = i64("axes2", [2]);
  const cQShape = i64("q_shape", [0, 0, c.heads, c.headDim]);
  const cKvShape = i64("kv_shape", [0, 0, c.kvHeads, c.headDim]);
  const cRep = i64("kv_repeat", [1, 1, c.heads / c.kvHeads, 1, 1]);
  const cRepShape = i64("kv_rep_shape", [0, c.heads, -1, c.headDim]);
  const cAttnOut = i64("attn_out_shape", [0, 0, c.heads * c.headDim]);
  const cSplit = i64("rope_split", [half, half]);

  // Positions 0..S-1, RoPE tables [S, head_dim] and the additive causal mask [S, S].
  const seqLen = g.op("Gather", [g.op("Shape", ["input_ids"]), cIdx1], { axis: { i: 0 } });
  const pos = g.op("Range", [cStart, seqLen, cStep]);
  const freqs = g.op("Mul", [g.op("Unsqueeze", [g.op("Cast", [pos], { to: { i: TensorType.FLOAT } }), cAx1]), cInvFreq]);
  const emb = g.op("Concat", [freqs, freqs], { axis: { i: -1 } });
  const cos = g.op("Cos", [emb]);
  const sin = g.op("Sin", [emb]);
  const future = g.op("Greater", [g.op("Unsqueeze", [pos, cAx0]), g.op("Unsqueeze", [pos, cAx1])]);
  const mask = g.op("Where", [future, cNegMin, cZero]);

  const rmsNorm = (x: string, w: string) => {
    const variance = g.op("ReduceMean", [g.op("Mul", [x, x])], { axes: { ints: [-1] }, keepdims: { i: 1 } });
    const inv = g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [variance, cEps])])]);
    return g.op("Mul", [w, g.op("Mul", [x, inv])]);
  };
  const linear = (x: string, w: string) => g.op("MatMul", [x, g.op("Transpose", [w], { perm: { ints: [1, 0] } })]);
  const rope = (x: string) => {
    const [x1, x2] = g.ops("Split", [x, cSplit], 2, { axis: { i: -1 } });
    const rotated = g.op("Concat", [g.op("Neg", [x2]), x1], { axis: { i: -1 } });
    return g.op("Add", [g.op("Mul", [x, cos]), g.op("Mul", [rotated, sin])]);
  };
  const heads = (x: string, shape: string) => g.op("Transpose", [g.op("Reshape", [x, shape])], { perm: { ints: [0, 2, 1, 3] } });

  let h = g.op("Gather", [g.weight("model.embed_tokens.weight"), "input_ids"], { axis: { i: 0 } });
  for (let i = 0; i < c.layers; i++) {
    const p = `model.layers.${i}.`;
    const x = rmsNorm(h, g.weight(`${p}input_layernorm.weight`));
    const q = rope(heads(linear(x, g.weight(`${p}self_attn.q_proj.weight`)), cQShape));
    let k = rope(heads(linear(x, g.weight(`${p}self_attn.k_proj.weight`)), cKvShape));
    let v = heads(linear(x, g.weight(`${p}self_attn.v_proj.weight`)), cKvShape);
    if (c.kvHeads !== c.heads) {
      // HF repeat_kv: query head j reads kv head j // (heads / kvHeads).
      const repeat = (t: string) => g.op("Reshape", [g.op("Expand", [g.op("Unsqueeze", [t, cAx2]), cRep]), cRepShape]);
      k = repeat(k);
      v = repeat(v);
    }
    const scores = g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [k], { perm: { ints: [0, 1, 3, 2] } })]), cScale]);
    const probs = g.op("Softmax", [g.op("Add", [scores, mask])], { axis: { i: -1 } });
    const attn = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v])], { perm: { ints: [0, 2, 1, 3] } }), cAttnOut]);
    h = g.op("Add", [h, linear(attn, g.weight(`${p}self_attn.o_proj.weight`))]);

    const y = rmsNorm(h, g.weight(`${p}post_attention_layernorm.weight`));
    const gate = linear(y, g.weight(`${p}mlp.gate_proj.weight`));
    const act = g.op("Mul", [gate, g.op("Sigmoid", [gate])]);
    h = g.op("Add", [h, linear(g.op("Mul", [act, linear(y, g.weight(`${p}mlp.up_proj.weight`))]), g.weight(`${p}mlp.down_proj.weight`))]);
  }
  h = rmsNorm(h, g.weight("model.norm.weight"));
  g.op("MatMul", [h, g.op("Transpose", [g.weight(c.tied ? "model.embed_tokens.weight" : "lm_head.weight")], { perm: { ints: [1, 0] } })], undefined, "logits");

  const inputs: ValueInfoSpec[] = [{ name: "input_ids", type: TensorType.INT64, shape: ["batch", "seq"] }];
  for (const w of llamaWeightShapes(config)) inputs.push({ name: w.name, type: TensorType.FLOAT, shape: w.shape });
  return encodeOnnxModel({
    graphName: `llama_${c.layers}_layers`,
    opset: 14,
    irVersion: 7,
    producer: "mergeloom",
    nodes: g.nodes,
    inputs,
    outputs: [{ name: "logits", type: TensorType.FLOAT, shape: ["batch", "seq", c.vocab] }],
    initializers: g.initializers,
  });
}

interface Resolved {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  eps: number;
  theta: number;
  vocab: number;
  tied: boolean;
}

function resolve(cfg: LlamaGraphConfig): Resolved {
  const bad = (field: string, why: string) => new MergeloomError("CONFIG_INVALID", `build llama graph config.${field}: ${why}`);
  for (const f of ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"] as const) {
    if (!Number.isSafeInteger(cfg[f]) || cfg[f] < 1) throw bad(f, `${JSON.stringify(cfg[f])} must be a positive integer`);
  }
  const heads = cfg.num_attention_heads;
  const kvHeads = cfg.num_key_value_heads ?? heads;
  if (!Number.isSafeInteger(kvHeads) || kvHeads < 1 || heads % kvHeads !== 0) {
    throw bad("num_key_value_heads", `${kvHeads} must be a positive divisor of num_attention_heads (${heads})`);
  }
  const headDim = cfg.head_dim ?? cfg.hidden_size / heads;
  if (!Number.isSafeInteger(headDim) || headDim < 2 || headDim % 2 !== 0) {
    throw bad("head_dim", `${headDim} must be an even positive integer (hidden_size / num_attention_heads unless given)`);
  }
  for (const f of ["rms_norm_eps", "rope_theta"] as const) {
    if (typeof cfg[f] !== "number" || !(cfg[f] > 0)) throw bad(f, `${JSON.stringify(cfg[f])} must be a positive number`);
  }
  return {
    hidden: cfg.hidden_size,
    intermediate: cfg.intermediate_size,
    layers: cfg.num_hidden_layers,
    heads,
    kvHeads,
    headDim,
    eps: cfg.rms_norm_eps,
    theta: cfg.rope_theta,
    vocab: cfg.vocab_size,
    tied: cfg.tie_word_embeddings ?? false,
  };
}

/** Names intermediate values and collects nodes and constant initializers. */
class GraphBuilder {
  readonly nodes: NodeSpec[] = [];
  readonly initializers: TensorSpec[] = [];
  private n = 0;

  weight(name: string): string {
    return name;
  }

  constF32(name: string, dims: number[], values: ArrayLike<number>): string {
    this.initializers.push({ name, type: TensorType.FLOAT, dims, raw: f32Bytes(values) });
    return name;
  }

  constI64(name: string, dims: number[], values: number[]): string {
    this.initializers.push({ name, type: TensorType.INT64, dims, raw: i64Bytes(values) });
    return name;
  }

  op(op: string, inputs: string[], attrs?: Record<string, AttrValue>, output?: string): string {
    return this.ops(op, inputs, 1, attrs, output)[0];
  }

  ops(op: string, inputs: string[], outputs: number, attrs?: Record<string, AttrValue>, name?: string): string[] {
    const id = `${op.toLowerCase()}_${this.n++}`;
    const outs = Array.from({ length: outputs }, (_, k) => (name && outputs === 1 ? name : `${id}_out${k}`));
    this.nodes.push({ op, inputs, outputs: outs, name: id, attrs });
    return outs;
  }
}
