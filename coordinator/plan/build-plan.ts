/**
 * Turns a validated config into the full list of output tensors with their resolved inputs and
 * parameters — reading only checkpoint headers. Everything that can be wrong with a merge
 * (missing tensors, shape mismatches, layer ranges, missing parameters) surfaces here, in
 * seconds, before any tensor data is read.
 */
import { DTYPE_BYTES, isFloatDType, isMergeableDType, MERGEABLE_DTYPES, numelOf, type FloatDType } from "../../proto/dtype.js";
import { ConfigError, MergeloomError, ParamError, ShapeMismatchError } from "../../proto/errors.js";
import type { ParamValue, TensorInputSpec, TensorSource, TensorSpec } from "../../proto/merge-task.js";
import type { MergeMethod } from "../../worker/merge/define-merge-method.js";
import type { MergeMethodRegistry } from "../../worker/merge/merge-method-registry.js";
import type { ParamSpecs } from "../../worker/merge/params.js";
import type { Checkpoint, CheckpointTensor } from "../../worker/storage/checkpoint.js";
import { openModel } from "../../worker/storage/hub/open-model.js";
import { resolveModelReference, type ResolvedModel } from "../../worker/storage/hub/resolve-model-reference.js";
import { modelLocation } from "../../worker/storage/model-location.js";
import type { HttpOptions } from "../../worker/storage/http-byte-source.js";
import type { MergeConfig, ParamScope, SliceConfig, SourceConfig } from "../config/merge-config.js";
import { gradientPosition, resolveParam } from "../config/resolve-param.js";
import { classifyTensors, layerTensorName, type TensorLayout } from "./classify-tensors.js";
import { checkMergekitNumerics, mergekitComputeDtype, type NumericsMode } from "../../worker/numerics/numerics-mode.js";
import { checkTokenizerSource } from "./check-tokenizer-source.js";
import { localPath } from "../../worker/merge/tensor-io.js";

export interface PlannedTensor extends TensorSpec {
  /** Output layer index, or -1 for pre weights and -2 for post weights (task grouping). */
  layer: number;
}

export interface MergePlan {
  config: MergeConfig;
  method: MergeMethod;
  /** Checkpoints by model reference as written in the config. */
  checkpoints: Map<string, Checkpoint>;
  tensors: PlannedTensor[];
  numLayers: number;
  outDtype: FloatDType;
  /** Model whose config.json the output starts from (base, else the first model). */
  configModel: string;
  bytesToRead: number;
  bytesToWrite: number;
  /** Hub references (as written) → the commit sha they were pinned to for this job. */
  pins: Record<string, string>;
  /** The tokenizer donor (`tokenizer_source` / `tokenizer.source` or the base), resolved. */
  tokenizer?: ResolvedModel;
  /** Things that are legal but probably not what the user wants; emitted as `warning` events. */
  warnings: string[];
}

export interface PlanOptions {
  registry: MergeMethodRegistry;
  storageRoots?: readonly string[];
  /** Timeouts and retries for http(s) inputs. */
  http?: HttpOptions;
  /** Opens a model reference; defaults to reading headers from disk, HTTP or the Hub. */
  open?: (ref: string) => Promise<Checkpoint>;
  /** "mergekit": every float tensor carries the compute dtype mergekit would use (`--numerics mergekit`). */
  numerics?: NumericsMode;
  /** Merge models whose config.json architectures differ (mergekit-yaml's --allow-crimes). */
  allowCrimes?: boolean;
  /** Hub commits pinned earlier (a resumed job): reused instead of resolving the revisions again. */
  pins?: Readonly<Record<string, string>>;
}

const LM_HEAD = "lm_head.weight";
const EMBED = "model.embed_tokens.weight";
/**
 * Tensors a model may lack, as in mergekit's architecture files (`optional: true`): the output
 * head (tied to the embeddings), and the rotary-frequency and position-id buffers some
 * checkpoints carry. Every other tensor must be present in every model that contributes to it.
 */
const OPTIONAL = [/^lm_head\.weight$/, /(^|\.)rotary_emb\.inv_freq$/, /(^|\.)position_ids$/];
const LAYER_INDEX = /\blayers\.(\d+)\./;

export { modelLocation };

export async function buildPlan(config: MergeConfig, opts: PlanOptions): Promise<MergePlan> {
  const method = opts.registry.get(config.mergeMethod);
  if (opts.numerics === "mergekit") checkMergekitNumerics(method.name);
  if (config.tokenizerSource === "union") {
    // Fail before any work: a union vocabulary needs embedding permutation, which is not built yet.
    throw new ConfigError("tokenizer_source", "'union' is not supported yet; use 'base' or a model path (the tokenizer is then copied from it)");
  }
  const open = opts.open ?? ((ref: string) => openModel(ref, { storageRoots: opts.storageRoots, http: opts.http, pins: opts.pins }));

  // Open every referenced checkpoint (headers only), in parallel.
  const refs = new Set<string>();
  if (config.baseModel) refs.add(config.baseModel);
  for (const s of config.slices) if (s.baseModel) refs.add(s.baseModel);
  for (const s of config.slices) for (const src of s.sources) refs.add(src.model);
  const vectorRefs = new Set<string>();
  for (const s of config.slices) for (const src of s.sources) for (const v of src.vectors ?? []) vectorRefs.add(v.path);
  const checkpoints = new Map<string, Checkpoint>();
  await Promise.all([...refs, ...vectorRefs].map(async (r) => checkpoints.set(r, await open(r))));
  const pins: Record<string, string> = {};
  for (const [r, ck] of checkpoints) if (ck.hub) pins[r] = ck.hub.sha;
  // The tokenizer donor is resolved (and pinned) now too, so assembly copies the files of the same commit.
  const tokRef = config.tokenizerSource === undefined || config.tokenizerSource === "base" ? config.baseModel ?? config.slices[0].sources[0].model : config.tokenizerSource;
  let tokenizer: ResolvedModel | undefined;
  const tokCk = checkpoints.get(tokRef);
  if (tokCk?.hub) tokenizer = { kind: "hub", ref: tokRef, ...tokCk.hub, location: tokCk.location };
  else if (!tokCk) {
    tokenizer = await resolveModelReference(tokRef, { pins: opts.pins });
    if (tokenizer.kind === "hub") pins[tokRef] = tokenizer.sha;
  }

  if (!opts.allowCrimes) checkArchitectures(refs, checkpoints);
  const tokBase = checkpoints.get(config.baseModel ?? config.slices[0]?.sources[0]?.model ?? "");
  // A Hub tokenizer source is checked by its reader (fetched from the pinned commit at assembly).
  if (tokenizer?.kind !== "hub") await checkTokenizerSource(config.tokenizerSource, tokBase && localPath(tokBase.location));

  const layouts = new Map<string, TensorLayout>();
  for (const r of refs) layouts.set(r, classifyTensors(checkpoints.get(r)!.tensors.keys()));
  const warnings: string[] = [];
  for (const r of refs) {
    if (checkpoints.get(r)!.tensors.size === 0) {
      throw new MergeloomError("CHECKPOINT_MISSING", `plan: model '${r}' (${checkpointFile(checkpoints.get(r)!)}) holds no tensors; the file is empty or not a model — check the path`);
    }
  }
  const numLayersOf = (ref: string): number => {
    const ck = checkpoints.get(ref)!;
    const n = ck.config?.num_hidden_layers;
    return typeof n === "number" ? n : layouts.get(ref)!.numLayers;
  };

  // models: form → one slice over every layer, base appended last when not listed (mergekit).
  const slices: SliceConfig[] = config.slices.map((s, si) => ({
    ...s,
    sources: s.sources.map((src, j) => {
      const n = numLayersOf(src.model);
      const range = src.layerRange ?? [0, n];
      if (range[1] > n || range[0] < 0) {
        throw new ConfigError(
          `slices[${si}].sources[${j}].layer_range`,
          `[${range[0]}, ${range[1]}] is beyond model '${src.model}', which has ${n} layers; use a range within [0, ${n}]`,
        );
      }
      assertLayersPresent(checkpoints.get(src.model)!, src.model, range, n);
      return { ...src, layerRange: range };
    }),
  }));
  if (config.fromModels && config.baseModel && !slices[0].sources.some((s) => s.model === config.baseModel)) {
    slices[0].sources.push({ model: config.baseModel, layerRange: [0, numLayersOf(config.baseModel)] });
  }
  slices.forEach((s, si) => {
    const lens = s.sources.map((src) => src.layerRange![1] - src.layerRange![0]);
    if (!lens.every((l) => l === lens[0])) {
      throw new ConfigError(`slices[${si}].sources`, `all sources of a slice must span the same number of layers (got ${lens.join(", ")})`);
    }
    const base = s.baseModel ?? config.baseModel;
    if (method.base === "required" && base && !s.sources.some((src) => src.model === base)) {
      throw new ConfigError(
        `slices[${si}].sources`,
        `merge method '${method.name}' needs base_model '${base}' as a source of every slice; add it with a layer_range of the same length`,
      );
    }
  });
  if (method.base === "required" && slices.some((s) => !(s.baseModel ?? config.baseModel))) {
    throw new ConfigError("base_model", `merge method '${method.name}' needs a base_model`);
  }

  const firstRef = slices[0].sources[0].model;
  const firstCk = checkpoints.get(firstRef)!;
  // Every tensor name any source model has: a tensor only the second model holds is then
  // reported as missing from the first instead of being silently left out of the output.
  const layout = classifyTensors(new Set([...refs].flatMap((r) => [...checkpoints.get(r)!.tensors.keys()])));
  layout.layerPrefix = layouts.get(firstRef)!.layerPrefix;
  const outDtype: FloatDType = config.outDtype ?? config.dtype ?? inferDType(firstCk);
  const tensors: PlannedTensor[] = [];

  const planTensor = (outName: string, inNames: string[], sources: SourceConfig[], slice: SliceConfig | undefined, t: number, layer: number) => {
    // mergekit's ConfigReader: the slice's base_model, else the top-level one
    const baseRef = slice?.baseModel ?? config.baseModel;
    const inputs: TensorInputSpec[] = [];
    let baseIndex = -1;
    const seen = new Set<string>();
    const missing: number[] = [];
    sources.forEach((src, j) => {
      const ck = checkpoints.get(src.model)!;
      let tn = inNames[j];
      let entry: CheckpointTensor | undefined = ck.tensors.get(tn);
      if (!entry && tn === LM_HEAD) {
        entry = ck.tensors.get(EMBED); // tied embeddings: mergekit's tied_names fallback
        if (entry) {
          tn = EMBED;
          if (ck.config?.tie_word_embeddings === false) {
            warnings.push(`model '${src.model}' has no ${LM_HEAD} although its config.json sets tie_word_embeddings: false; its ${EMBED} is used in its place (mergekit's tied_names) — the checkpoint may be incomplete`);
          }
        }
      }
      if (!entry) {
        missing.push(j);
        return;
      }
      if (src.model === baseRef && !seen.has(src.model)) baseIndex = inputs.length;
      seen.add(src.model);
      const scopes = [src.parameters, slice?.parameters, config.parameters];
      const params = resolveParams(method.modelParams, scopes, inNames[j], t, src.model === baseRef, `${src.model}: ${inNames[j]}`);
      if (!isMergeableDType(entry.dtype) && !(sources.length === 1 && method.name === "passthrough" && (params.scale ?? 1) === 1)) {
        throw new MergeloomError(
          "CHECKPOINT_INVALID",
          `plan ${outName}: tensor '${tn}' of model '${src.model}' (${entry.uri}) has dtype ${entry.dtype}, which cannot be merged (mergeable: ${MERGEABLE_DTYPES.join(", ")}); ` +
            `only an unmerged passthrough copies such a tensor — convert the checkpoint to a float dtype or leave this model out of this tensor`,
        );
      }
      const spec: TensorInputSpec = { model: src.model, source: sourceOf(entry, tn), params };
      if (src.vectors?.length) {
        spec.addVectors = src.vectors.map((v) => {
          const vt = checkpoints.get(v.path)!.tensors.get(tn);
          if (!vt) throw new MergeloomError("CHECKPOINT_MISSING", `plan ${outName}: task vector '${v.path}' has no tensor '${tn}' to add to '${src.model}'`);
          if (vt.shape.join("x") !== entry!.shape.join("x")) {
            throw new ShapeMismatchError(`plan ${outName}: task vector '${v.path}' has shape [${vt.shape}] but '${src.model}' has [${entry!.shape}]`);
          }
          return { source: sourceOf(vt, tn), scale: v.scale };
        });
      }
      inputs.push(spec);
    });
    if (inputs.length === 0) return; // in no source (optional everywhere, e.g. lm_head with tied embeddings, or another layer type)
    if (missing.length && !OPTIONAL.some((re) => re.test(inNames[missing[0]]))) {
      const j = missing[0];
      const src = sources[j];
      const holder = inputs[0].model;
      throw new MergeloomError(
        "CHECKPOINT_MISSING",
        `plan ${outName}: tensor '${inNames[j]}' required but not present in model '${src.model}' (${checkpointFile(checkpoints.get(src.model)!)}), while '${holder}' has it; ` +
          `every model that contributes to a tensor must hold it — check that the checkpoint is complete and of the same architecture, or leave the model out of this slice`,
      );
    }
    if (method.base === "required" && baseIndex < 0) {
      throw new MergeloomError("CHECKPOINT_MISSING", `plan ${outName}: base model '${baseRef}' has no tensor '${outName}', and '${method.name}' needs the base for every tensor`);
    }
    const shape = commonShape(outName, inputs);
    const params = resolveParams(method.params, [slice?.parameters, config.parameters], outName, t, false, outName);
    const float = inputs.every((i) => isMergeableDType(i.source.dtype));
    const tensor: PlannedTensor = {
      name: outName,
      shape,
      outDtype: float ? outDtype : inputs[0].source.dtype,
      method: method.name,
      params,
      inputs,
      baseIndex,
      layer,
    };
    if (opts.numerics === "mergekit" && float) tensor.computeDtype = mergekitComputeDtype(config.dtype, inputs, baseIndex, method.name);
    method.check?.({ tensorName: outName, shape, baseIndex, params, inputs: inputs.map((i) => ({ model: i.model, params: i.params })) });
    tensors.push(tensor);
  };

  // Pre weights from the first slice's sources, post weights from the last slice's, at t = 0.
  const first = slices[0];
  const last = slices[slices.length - 1];
  for (const name of layout.pre) planTensor(name, first.sources.map(() => name), first.sources, first, 0, -1);
  let outLayer = 0;
  for (const s of slices) {
    const n = s.sources[0].layerRange![1] - s.sources[0].layerRange![0];
    for (let j = 0; j < n; j++) {
      const t = gradientPosition(j, n);
      for (const suffix of layout.layerSuffixes) {
        const outName = layerTensorName(layout, outLayer, suffix);
        const inNames = s.sources.map((src) => layerTensorName(layouts.get(src.model)!, src.layerRange![0] + j, suffix));
        planTensor(outName, inNames, s.sources, s, t, outLayer);
      }
      outLayer++;
    }
  }
  for (const name of layout.post) planTensor(name, last.sources.map(() => name), last.sources, last, 0, -2);
  if (tensors.length === 0) {
    throw new MergeloomError("CHECKPOINT_MISSING", `plan: the models hold no tensors to merge for this config; check the model paths and layer ranges`);
  }

  let bytesToRead = 0;
  let bytesToWrite = 0;
  for (const t of tensors) {
    for (const i of t.inputs) {
      bytesToRead += i.source.byteLength;
      for (const v of i.addVectors ?? []) bytesToRead += v.source.byteLength;
    }
    bytesToWrite += numelOf(t.shape) * DTYPE_BYTES[t.outDtype];
  }
  return {
    config,
    method,
    checkpoints,
    tensors,
    numLayers: outLayer,
    outDtype,
    configModel: config.baseModel ?? firstRef,
    bytesToRead,
    bytesToWrite,
    pins,
    ...(tokenizer ? { tokenizer } : {}),
    warnings: [...new Set(warnings)],
  };
}

/**
 * mergekit's get_architecture_info: models of different architectures merge only with
 * --allow-crimes. Compared when every model's config.json names one; otherwise the tensor names
 * decide (as mergekit's inference does), and the shape checks catch real mismatches.
 */
function checkArchitectures(refs: ReadonlySet<string>, checkpoints: ReadonlyMap<string, Checkpoint>): void {
  const archs = [...refs].map((r) => {
    const a = checkpoints.get(r)!.config?.architectures;
    return { ref: r, arch: Array.isArray(a) && typeof a[0] === "string" ? a[0] : undefined };
  });
  if (archs.some((a) => a.arch === undefined)) return;
  const first = archs[0];
  const other = archs.find((a) => a.arch !== first.arch);
  if (other) {
    throw new ConfigError(
      "models",
      `'${first.ref}' is ${first.arch} but '${other.ref}' is ${other.arch}; mixing architectures needs --allow-crimes (as in mergekit)`,
    );
  }
}

/** The file to name for a model: its one weight file, or its shard index. */
function checkpointFile(ck: Checkpoint): string {
  if (ck.files.length === 1) return ck.files[0];
  return ck.location.endsWith("/") ? `${ck.location}model.safetensors.index.json` : `${ck.location}/model.safetensors.index.json`;
}

/** A layer the config (num_hidden_layers) promises must have tensors in the checkpoint. */
function assertLayersPresent(ck: Checkpoint, ref: string, range: readonly [number, number] | number[], declared: number): void {
  const present = new Set<number>();
  for (const name of ck.tensors.keys()) {
    const m = LAYER_INDEX.exec(name);
    if (m) present.add(Number(m[1]));
  }
  for (let l = range[0]; l < range[1]; l++) {
    if (!present.has(l)) {
      throw new MergeloomError(
        "CHECKPOINT_MISSING",
        `plan: model '${ref}' (${checkpointFile(ck)}) has no tensors for layer ${l}, but its config.json says ${declared} layers; the checkpoint is incomplete — check the download or the layer_range`,
      );
    }
  }
}

function sourceOf(e: CheckpointTensor, name: string): TensorSource {
  return { uri: e.uri, offset: e.offset, byteLength: e.byteLength, dtype: e.dtype, shape: e.shape.slice(), tensor: name };
}

function inferDType(ck: Checkpoint): FloatDType {
  for (const t of ck.tensors.values()) if (isFloatDType(t.dtype)) return t.dtype;
  return "F32";
}

/** Embeddings of different vocab sizes merge on the common top-left block (mergekit); others must match. */
function commonShape(name: string, inputs: readonly TensorInputSpec[]): number[] {
  const shapes = inputs.map((i) => i.source.shape);
  const same = shapes.every((s) => s.length === shapes[0].length && s.every((d, k) => d === shapes[0][k]));
  if (same) return shapes[0].slice();
  const isEmbed = /embed|lm_head/.test(name) && shapes.every((s) => s.length === 2 && s[1] === shapes[0][1]);
  if (isEmbed) return [Math.min(...shapes.map((s) => s[0])), shapes[0][1]];
  const desc = inputs.map((i) => `'${i.model}' [${i.source.shape.join(", ")}]`).join(" vs ");
  throw new ShapeMismatchError(`plan ${name}: shape mismatch between models: ${desc}; these models do not share an architecture`);
}

function resolveParams(
  specs: ParamSpecs,
  scopes: readonly (ParamScope | undefined)[],
  tensorName: string,
  t: number,
  isBase: boolean,
  what: string,
): Record<string, ParamValue> {
  const out: Record<string, ParamValue> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const v = resolveParam(name, scopes, tensorName, t) ?? spec.default;
    if (v === undefined) {
      if (spec.required && !isBase) throw new ParamError(`plan ${what}: missing required parameter '${name}'; set it under the model's parameters or at the top level`);
      continue;
    }
    if (spec.kind === "number" && typeof v !== "number") throw new ParamError(`plan ${what}: parameter '${name}' must be a number, got ${JSON.stringify(v)}`);
    if (spec.kind === "bool" && typeof v !== "boolean") throw new ParamError(`plan ${what}: parameter '${name}' must be true or false, got ${JSON.stringify(v)}`);
    out[name] = v;
  }
  return out;
}
