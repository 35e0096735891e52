/**
 * Splits a decoder checkpoint's tensor names into pre weights (embeddings), per-layer weights and
 * post weights (final norm, lm_head), the way mergekit's architecture files do for Llama-family
 * models, but derived from the names so that Mistral, Qwen, Gemma … need no table.
 */
export interface TensorLayout {
  pre: string[];
  /** Layer weight suffixes in a stable order (e.g. `self_attn.q_proj.weight`), from layer 0. */
  layerSuffixes: string[];
  /** Prefix before the layer index, e.g. `model.layers.`. */
  layerPrefix: string;
  post: string[];
  numLayers: number;
}

const LAYER = /^(.*?\blayers\.)(\d+)\.(.+)$/;
/** mergekit's Llama order for post weights; others follow alphabetically. */
const POST_ORDER = ["model.norm.weight", "lm_head.weight"];
/** Within a layer, mergekit's Llama template order; unknown suffixes follow alphabetically. */
const LAYER_ORDER = [
  "input_layernorm.weight",
  "self_attn.q_proj.weight",
  "self_attn.q_proj.bias",
  "self_attn.k_proj.weight",
  "self_attn.k_proj.bias",
  "self_attn.v_proj.weight",
  "self_attn.v_proj.bias",
  "self_attn.o_proj.weight",
  "post_attention_layernorm.weight",
  "mlp.up_proj.weight",
  "mlp.gate_proj.weight",
  "mlp.down_proj.weight",
];

function byKnownOrder(known: readonly string[]) {
  return (a: string, b: string) => {
    const ia = known.indexOf(a);
    const ib = known.indexOf(b);
    if (ia >= 0 || ib >= 0) return (ia < 0 ? known.length : ia) - (ib < 0 ? known.length : ib);
    return a < b ? -1 : a > b ? 1 : 0;
  };
}

export function classifyTensors(names: Iterable<string>, layerPattern: RegExp = LAYER): TensorLayout {
  const pre: string[] = [];
  const post: string[] = [];
  const suffixes = new Set<string>();
  let prefix = "model.layers.";
  let maxLayer = -1;
  for (const name of names) {
    const m = layerPattern.exec(name);
    if (m) {
      prefix = m[1];
      const idx = Number(m[2]);
      maxLayer = Math.max(maxLayer, idx);
      suffixes.add(m[3]);
    } else if (/embed/.test(name) && !/^lm_head/.test(name)) {
      pre.push(name);
    } else {
      post.push(name);
    }
  }
  pre.sort();
  post.sort(byKnownOrder(POST_ORDER));
  return { pre, layerSuffixes: [...suffixes].sort(byKnownOrder(LAYER_ORDER)), layerPrefix: prefix, post, numLayers: maxLayer + 1 };
}

export function layerTensorName(layout: Pick<TensorLayout, "layerPrefix">, layer: number, suffix: string): string {
  return `${layout.layerPrefix}${layer}.${suffix}`;
}

/** Layers of any module: `layers.N.`, vision `blocks.N.`, GPT-style `h.N.`. */
const MODULE_LAYER = /^(.*?\b(?:layers|blocks|h)\.)(\d+)\.(.+)$/;

const PROJECTOR = /^(?:model\.)?(?:multi_modal_projector\.|mm_projector\.|visual\.merger\.)/;
const VISION = /^(?:model\.)?(?:vision_tower\.|vision_model\.|visual\.)/;

/**
 * Which module of a multimodal checkpoint a tensor belongs to, for mergekit's `modules:` names:
 * `vision_tower` (vision_tower.*, vision_model.*, visual.* but the merger), `multi_modal_projector`
 * (multi_modal_projector.*, mm_projector.*, visual.merger.*), `text_decoder` (everything else);
 * any other module name selects the tensors under `<name>.` or `model.<name>.`.
 */
export function moduleOfTensor(module: string, name: string): boolean {
  switch (module) {
    case "multi_modal_projector":
      return PROJECTOR.test(name);
    case "vision_tower":
      return VISION.test(name) && !PROJECTOR.test(name);
    case "text_decoder":
      return !VISION.test(name) && !PROJECTOR.test(name);
    default:
      return name.startsWith(`${module}.`) || name.startsWith(`model.${module}.`);
  }
}

/** The layout of one module's tensors (mergekit's per-module pre, layer and post weights). */
export function classifyModuleTensors(module: string, names: Iterable<string>): TensorLayout {
  return classifyTensors(
    [...names].filter((n) => moduleOfTensor(module, n)),
    MODULE_LAYER,
  );
}
