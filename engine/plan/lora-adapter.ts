/**
 * A PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors), read the way
 * PEFT's `PeftModel.from_pretrained(...).merge_and_unload()` applies it — which is what mergekit
 * does for `model+adapter` references. Only headers are read: the planner attaches each delta's
 * byte ranges to the tensor it changes, and the worker adds scale·B·A as the tensor loads.
 *
 * PEFT conventions followed: keys `base_model.model.<module>.lora_A.weight` / `.lora_B.weight`
 * (and `lora_embedding_A` / `lora_embedding_B` for embeddings, whose delta is transposed like a
 * `fan_in_fan_out` layer's); scale `lora_alpha / r`, or `lora_alpha / sqrt(r)` with `use_rslora`;
 * per-module `rank_pattern` / `alpha_pattern` matched as PEFT's get_pattern_key does; other
 * `base_model.model.<name>` tensors (`modules_to_save`, trained biases) replace `<name>`.
 * Modules outside `target_modules` / `layers_to_transform` are skipped with a warning (PEFT never
 * creates their LoRA layers, so their saved weights are ignored on load).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { CheckpointError, ConfigError } from "../errors/index.js";
import { openCheckpoint, type CheckpointTensor } from "../storage/checkpoint.js";
import { fetchSmallFile } from "../storage/http-byte-source.js";
import { isHttpUri } from "../storage/open-byte-source.js";
import { resolveAdapterReference } from "./model-ref.js";

export interface LoraTensorDelta {
  a: CheckpointTensor;
  b: CheckpointTensor;
  scale: number;
  transpose: boolean;
}

export interface LoraAdapter {
  ref: string;
  /** Base tensor name → its delta. */
  deltas: Map<string, LoraTensorDelta>;
  /** Base tensor name → the adapter's full replacement of it. */
  replacements: Map<string, CheckpointTensor>;
  warnings: string[];
}

interface AdapterConfig {
  peft_type?: string;
  r?: number;
  lora_alpha?: number;
  use_rslora?: boolean;
  use_dora?: boolean;
  fan_in_fan_out?: boolean;
  target_modules?: string | string[] | null;
  layers_to_transform?: number | number[] | null;
  rank_pattern?: Record<string, number>;
  alpha_pattern?: Record<string, number>;
}

const PREFIX = "base_model.model.";
const LORA_KEY = /^(.*)\.lora_(A|B|embedding_A|embedding_B)(?:\.default)?(?:\.weight)?$/;

async function readAdapterConfig(location: string, ref: string): Promise<AdapterConfig> {
  let raw: Uint8Array | undefined;
  if (isHttpUri(location)) {
    raw = await fetchSmallFile(new URL("adapter_config.json", location.endsWith("/") ? location : `${location}/`).href);
  } else {
    raw = await readFile(join(location, "adapter_config.json")).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return undefined;
      throw err;
    });
  }
  if (!raw) throw new CheckpointError(ref, "no adapter_config.json; a LoRA reference (model+adapter) must name a PEFT adapter directory");
  let cfg: unknown;
  try {
    cfg = JSON.parse(new TextDecoder().decode(raw));
  } catch (err) {
    throw new CheckpointError(`${ref}/adapter_config.json`, `invalid JSON (${(err as Error).message})`, { cause: err });
  }
  if (typeof cfg !== "object" || cfg === null) throw new CheckpointError(`${ref}/adapter_config.json`, "must be a JSON object");
  return cfg as AdapterConfig;
}

/** PEFT's get_pattern_key: the first pattern that matches the module name's tail. */
function patternValue(patterns: Record<string, number> | undefined, module: string): number | undefined {
  for (const [key, value] of Object.entries(patterns ?? {})) {
    if (new RegExp(`^(.*\\.)?(${key})$`).test(module)) return value;
  }
  return undefined;
}

/** PEFT's check_target_module_exists for a string (full regex match) or a list (name or `.name` suffix). */
function isTargeted(cfg: AdapterConfig, module: string): boolean {
  const t = cfg.target_modules;
  let ok = true;
  if (typeof t === "string") ok = t === "all-linear" || new RegExp(`^(?:${t})$`).test(module);
  else if (Array.isArray(t)) ok = t.some((name) => module === name || module.endsWith(`.${name}`));
  if (!ok) return false;
  const layers = cfg.layers_to_transform;
  if (layers === undefined || layers === null) return true;
  const m = /\.layers\.(\d+)\./.exec(`${module}.`);
  const wanted = Array.isArray(layers) ? layers : [layers];
  return m !== null && wanted.includes(Number(m[1]));
}

/**
 * `localDir`: where the adapter's files are (a Hub adapter's HF cache snapshot); `weightsUri`: what
 * the tasks name as its weight file instead of that local path (the pinned `hf://` file, so a
 * worker without the coordinator's file system reads it from its own cache or the Hub).
 */
export async function openLoraAdapter(ref: string, localDir?: string, weightsUri?: string): Promise<LoraAdapter> {
  const location = localDir ?? resolveAdapterReference(ref);
  const cfg = await readAdapterConfig(location, ref);
  const file = isHttpUri(location)
    ? new URL("adapter_model.safetensors", location.endsWith("/") ? location : `${location}/`).href
    : join(location, "adapter_model.safetensors");
  if (cfg.peft_type !== undefined && cfg.peft_type !== "LORA") {
    throw new ConfigError("lora", `adapter '${ref}' is a ${cfg.peft_type} adapter; only LoRA adapters (peft_type LORA) can be merged`);
  }
  if (cfg.use_dora)
    throw new ConfigError(
      "lora",
      `adapter '${ref}' uses DoRA (use_dora: true), whose magnitude rescaling is not applied by mergeloom; merge it with PEFT first`,
    );
  const ck = await openCheckpoint(file);
  if (weightsUri) for (const t of ck.tensors.values()) t.uri = weightsUri;
  const parts = new Map<string, { A?: CheckpointTensor; B?: CheckpointTensor; embedding: boolean }>();
  const replacements = new Map<string, CheckpointTensor>();
  const warnings: string[] = [];
  for (const [key, t] of ck.tensors) {
    if (!key.startsWith(PREFIX)) throw new CheckpointError(file, `tensor '${key}' does not start with PEFT's '${PREFIX}'; is this a PEFT adapter?`);
    const rest = key.slice(PREFIX.length);
    if (/\.lora_magnitude_vector/.test(rest)) throw new ConfigError("lora", `adapter '${ref}' has DoRA magnitude vectors; merge it with PEFT first`);
    const m = LORA_KEY.exec(rest);
    if (!m) {
      replacements.set(rest.replace(/\.modules_to_save(?:\.default)?/, ""), t);
      continue;
    }
    const p = parts.get(m[1]) ?? { embedding: m[2].startsWith("embedding") };
    if (m[2].endsWith("A")) p.A = t;
    else p.B = t;
    parts.set(m[1], p);
  }
  const deltas = new Map<string, LoraTensorDelta>();
  const alpha0 = cfg.lora_alpha ?? 8;
  const r0 = cfg.r ?? 8;
  for (const [module, p] of parts) {
    if (!p.A || !p.B) throw new CheckpointError(file, `module '${module}' has lora_${p.A ? "A" : "B"} but not lora_${p.A ? "B" : "A"}`);
    if (!isTargeted(cfg, module)) {
      warnings.push(`adapter '${ref}': '${module}' is not in target_modules/layers_to_transform, so PEFT ignores its LoRA weights; skipped`);
      continue;
    }
    const r = patternValue(cfg.rank_pattern, module) ?? r0;
    const alpha = patternValue(cfg.alpha_pattern, module) ?? alpha0;
    if (p.A.shape.length !== 2 || p.B.shape.length !== 2 || p.A.shape[0] !== r || p.B.shape[1] !== r) {
      throw new CheckpointError(file, `module '${module}': lora_A [${p.A.shape}] and lora_B [${p.B.shape}] do not have rank r=${r} from adapter_config.json`);
    }
    const scale = cfg.use_rslora ? alpha / Math.sqrt(r) : alpha / r;
    deltas.set(`${module}.weight`, { a: p.A, b: p.B, scale, transpose: p.embedding || cfg.fan_in_fan_out === true });
  }
  return { ref, deltas, replacements, warnings };
}

/**
 * Whether the delta is added transposed to a weight of this stored shape. PEFT decides by layer
 * type: Linear layers take B·A (a `fan_in_fan_out: true` on them is reset, with a warning),
 * Conv1D layers (GPT-2 style, stored [in, out]) and embeddings take (B·A)ᵀ. The stored shapes
 * tell the two apart; only a square weight falls back to the flag.
 */
export function orientDelta(d: LoraTensorDelta, shape: readonly number[], what: string): boolean {
  const [rows, cols] = shape.length === 2 ? shape : [-1, -1];
  const plain = d.b.shape[0] === rows && d.a.shape[1] === cols;
  const transposed = d.a.shape[1] === rows && d.b.shape[0] === cols;
  if (plain && transposed) return d.transpose;
  if (plain || transposed) return transposed;
  throw new CheckpointError(what, `LoRA lora_A [${d.a.shape}] and lora_B [${d.b.shape}] do not fit the weight's shape [${shape}]`, { code: "SHAPE_MISMATCH" });
}
