/**
 * Turns a validated config into the full list of output tensors with their resolved inputs and
 * parameters — reading only checkpoint headers. Everything that can be wrong with a merge
 * (missing tensors, shape mismatches, layer ranges, missing parameters) surfaces here, in
 * seconds, before any tensor data is read.
 */
import { DTYPE_BYTES, isFloatDType, isMergeableDType, MERGEABLE_DTYPES, numelOf, type FloatDType } from "@mergeloom/proto/dtype";
import { MergeloomError } from "@mergeloom/proto/errors";
import { ConfigError, ParamError, ShapeMismatchError } from "../errors/index.js";
import type { ParamValue, TensorInputSpec, TensorSource, TensorSpec } from "@mergeloom/proto/merge-task";
import type { MergeMethod } from "../methods/define-merge-method.js";
import type { MergeMethodRegistry } from "../methods/merge-method-registry.js";
import type { ParamSpecs } from "../methods/params.js";
import type { Checkpoint, CheckpointTensor } from "../storage/checkpoint.js";
import { openModel } from "../storage/hub/open-model.js";
import { ADAPTER_WEIGHTS, fetchAdapterFiles } from "../storage/hub/fetch-adapter-files.js";
import { hubUri } from "../storage/hub/hub-reference.js";
import { resolveModelReference as resolveHubReference, type ResolvedModel } from "../storage/hub/resolve-model-reference.js";
import {
  checkMergekitNumerics,
  checkMergekitTensor,
  mergekitComputeDtype,
  mergekitResultDtype,
  torchBuildOf,
  type NumericsMode,
} from "../numerics/numerics-mode.js";
import { modelLocation } from "../storage/model-location.js";
import type { HttpOptions } from "../storage/http-byte-source.js";
import type { MergeConfig, ModuleConfig, ParamScope, SliceConfig, SourceConfig } from "../config/merge-config.js";
import { gradientPosition, resolveParam } from "../config/resolve-param.js";
import { classifyModuleTensors, classifyTensors, layerTensorName, type TensorLayout } from "./classify-tensors.js";
import { DroppedModels } from "./dropped-models.js";
import { orientDelta, openLoraAdapter, type LoraAdapter } from "./lora-adapter.js";
import { resolveModelReference, splitModelRef } from "./model-ref.js";
import { buildTokenizer, type MergedTokenizer } from "../tokenizer/build-tokenizer.js";
import { isEmbeddingTensor, planEmbedding } from "../tokenizer/plan-embeddings.js";
import { readTokenizerJson, type TokenizerJson } from "../tokenizer/tokenizer-json.js";
import { checkTokenizerSource } from "../output/check-tokenizer-source.js";
import { localPath } from "../driver/tensor-io.js";

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
  /** Things that are legal but probably not what the user wants; emitted as `warning` events. */
  warnings: string[];
  /** Hub references (as written) → the commit sha they were pinned to for this job. */
  pins: Record<string, string>;
  /** The tokenizer donor (`tokenizer_source` / `tokenizer.source` or the base), resolved. */
  tokenizerDonor?: ResolvedModel;
  /** The merged tokenizer when the config sets one (tokenizer_source / tokenizer). */
  tokenizer?: MergedTokenizer;
  /** vocab_size for the output config.json when the vocabulary was merged (padded). */
  vocabSize?: number;
}

export interface PlanOptions {
  registry: MergeMethodRegistry;
  storageRoots?: readonly string[];
  /** Timeouts and retries for http(s) inputs. */
  http?: HttpOptions;
  /** Opens a model reference; defaults to reading headers from disk, HTTP or the Hub. */
  open?: (ref: string) => Promise<Checkpoint>;
  /** "mergekit"/"mergekit-torch1.13": every float tensor carries the compute dtype mergekit would use (and the torch build). */
  numerics?: NumericsMode;
  /** Merge models whose config.json architectures differ (mergekit-yaml's --allow-crimes). */
  allowCrimes?: boolean;
  /** Hub commits pinned earlier (a resumed job): reused instead of resolving the revisions again. */
  pins?: Readonly<Record<string, string>>;
  /**
   * A model the method keeps nothing of in every tensor: refused (default), or only warned about —
   * for evolve candidates, where such a point (e.g. a density gene clamped to 0) is a valid,
   * model-less recipe to score.
   */
  droppedModels?: "refuse" | "warn";
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
  const torch = torchBuildOf(opts.numerics);
  if (torch) checkMergekitNumerics(method.name, torch);
  const openRef = opts.open ?? ((ref: string) => openModel(ref, { storageRoots: opts.storageRoots, http: opts.http, pins: opts.pins }));
  const open = (ref: string) => openRef(splitModelRef(ref).model);
  const warnings: string[] = [];
  const dropped = new DroppedModels(method);

  // Open every referenced checkpoint (headers only), in parallel.
  const refs = new Set<string>();
  if (config.baseModel) refs.add(config.baseModel);
  for (const s of config.slices) for (const src of s.sources) refs.add(src.model);
  for (const s of config.slices) if (s.baseModel) refs.add(s.baseModel);
  const vectorRefs = new Set<string>();
  for (const s of config.slices) for (const src of s.sources) for (const v of src.vectors ?? []) vectorRefs.add(v.path);
  const checkpoints = new Map<string, Checkpoint>();
  await Promise.all([...refs, ...vectorRefs].map(async (r) => checkpoints.set(r, await open(r))));

  const pins: Record<string, string> = {};
  for (const [r, ck] of checkpoints) if (ck.hub) pins[r] = ck.hub.sha;
  // The tokenizer donor is resolved (and pinned) now too, so assembly copies the files of the same commit.
  const src0 = config.tokenizerSource;
  const tokRef = src0 === undefined || src0 === "base" || src0 === "union" ? (config.baseModel ?? config.slices[0].sources[0].model) : src0;
  let tokenizerDonor: ResolvedModel | undefined;
  const tokCk = checkpoints.get(tokRef);
  if (tokCk?.hub) tokenizerDonor = { kind: "hub", ref: tokRef, ...tokCk.hub, location: tokCk.location };
  else if (!tokCk) {
    tokenizerDonor = await resolveHubReference(splitModelRef(tokRef).model, { pins: opts.pins });
    if (tokenizerDonor.kind === "hub") pins[tokRef] = tokenizerDonor.sha;
  }
  if (!opts.allowCrimes) checkArchitectures(refs, checkpoints);
  const tokBase = checkpoints.get(config.baseModel ?? config.slices[0]?.sources[0]?.model ?? "");
  // A Hub tokenizer source is checked by its reader (fetched from the pinned commit at assembly).
  if (tokenizerDonor?.kind !== "hub") await checkTokenizerSource(config.tokenizerSource, tokBase && localPath(tokBase.location));
  // model+adapter references: the adapter's deltas are added as the model's tensors load.
  const adapters = new Map<string, LoraAdapter>();
  await Promise.all(
    [...refs].map(async (r) => {
      const lora = splitModelRef(r).lora;
      if (lora === undefined) return;
      // A Hub adapter (org/adapter[@rev]) is pinned like a model and read from the HF cache (small files, downloaded whole).
      const where = await resolveHubReference(lora, { pins: opts.pins });
      let dir: string | undefined;
      let weightsUri: string | undefined;
      if (where.kind === "hub") {
        pins[lora] = where.sha;
        dir = (await fetchAdapterFiles(where.repo, where.revision, where.sha)).dir;
        // Tasks name the pinned Hub file, not the coordinator's cache: workers need no shared file system.
        weightsUri = hubUri(where.repo, where.sha, ADAPTER_WEIGHTS);
      }
      const a = await openLoraAdapter(lora, dir, weightsUri);
      warnings.push(...a.warnings);
      adapters.set(r, a);
    }),
  );
  const tokenizer = config.tokenizer ? await mergeTokenizers(config, refs, checkpoints, warnings) : undefined;
  if (tokenizer) warnings.push(...tokenizer.warnings);
  let vocabSize: number | undefined;

  for (const r of refs) {
    if (checkpoints.get(r)!.tensors.size === 0) {
      throw new MergeloomError(
        "CHECKPOINT_MISSING",
        `plan: model '${r}' (${checkpointFile(checkpoints.get(r)!)}) holds no tensors; the file is empty or not a model — check the path`,
      );
    }
  }
  // `modules:` configs plan each module with its own slices; other configs are one unnamed module.
  const modules: ModuleConfig[] = config.modules ?? [{ name: "", slices: config.slices, fromModels: config.fromModels }];
  const tensors: PlannedTensor[] = [];
  let firstRef: string | undefined;
  let outDtype: FloatDType | undefined;
  let numLayers: number | undefined;
  for (const mod of modules) {
    // mergekit names the one module of a single-module architecture "default": the whole model.
    const whole = mod.name === "" || (mod.name === "default" && modules.length === 1);
    const layouts = new Map<string, TensorLayout>();
    for (const r of refs)
      layouts.set(r, whole ? classifyTensors(checkpoints.get(r)!.tensors.keys()) : classifyModuleTensors(mod.name, checkpoints.get(r)!.tensors.keys()));
    const numLayersOf = (ref: string): number => {
      const ck = checkpoints.get(ref)!;
      const n = ck.config?.num_hidden_layers;
      return typeof n === "number" && whole ? n : layouts.get(ref)!.numLayers;
    };
    const at = (path: string) => (mod.name === "" ? path : `modules.${mod.name}.${path}`);

    // models: form → one slice over every layer, base appended last when not listed (mergekit).
    const slices: SliceConfig[] = mod.slices.map((s, si) => ({
      ...s,
      sources: s.sources.map((src, j) => {
        const n = numLayersOf(src.model);
        const range = src.layerRange ?? [0, n];
        if (range[1] > n || range[0] < 0) {
          throw new ConfigError(
            at(`slices[${si}].sources[${j}].layer_range`),
            `[${range[0]}, ${range[1]}] is beyond model '${src.model}', which has ${n} layers; use a range within [0, ${n}]`,
          );
        }
        if (whole) assertLayersPresent(checkpoints.get(src.model)!, src.model, range, n);
        return { ...src, layerRange: range };
      }),
    }));
    if (mod.fromModels && config.baseModel && !slices[0].sources.some((s) => s.model === config.baseModel)) {
      slices[0].sources.push({ model: config.baseModel, layerRange: [0, numLayersOf(config.baseModel)] });
    }
    slices.forEach((s, si) => {
      const lens = s.sources.map((src) => src.layerRange![1] - src.layerRange![0]);
      if (!lens.every((l) => l === lens[0])) {
        throw new ConfigError(at(`slices[${si}].sources`), `all sources of a slice must span the same number of layers (got ${lens.join(", ")})`);
      }
      const base = s.baseModel ?? config.baseModel;
      if (method.base === "required" && base && !s.sources.some((src) => src.model === base)) {
        throw new ConfigError(
          at(`slices[${si}].sources`),
          `merge method '${method.name}' needs base_model '${base}' as a source of every slice; add it with a layer_range of the same length`,
        );
      }
    });
    if (method.base === "required" && slices.some((s) => !(s.baseModel ?? config.baseModel))) {
      throw new ConfigError("base_model", `merge method '${method.name}' needs a base_model`);
    }

    const modFirst = slices[0].sources[0].model;
    firstRef ??= modFirst;
    outDtype ??= config.outDtype ?? config.dtype ?? inferDType(checkpoints.get(modFirst)!);
    // Every tensor name any source model has: a tensor only the second model holds is then
    // reported as missing from the first instead of being silently left out of the output.
    const allNames = new Set([...refs].flatMap((r) => [...checkpoints.get(r)!.tensors.keys()]));
    const layout = whole ? classifyTensors(allNames) : classifyModuleTensors(mod.name, allNames);
    layout.layerPrefix = layouts.get(modFirst)!.layerPrefix;
    if (!whole && layout.pre.length + layout.post.length + layout.layerSuffixes.length === 0) {
      throw new ConfigError(
        `modules.${mod.name}`,
        `model '${modFirst}' has no tensors of module '${mod.name}' (modules: text_decoder, vision_tower, multi_modal_projector, or a tensor-name prefix)`,
      );
    }

    const planTensor = (outName: string, inNames: string[], sources: SourceConfig[], slice: SliceConfig | undefined, t: number, layer: number) => {
      // mergekit's ConfigReader: the slice's base_model, else the top-level one
      const baseRef = slice?.baseModel ?? config.baseModel;
      const inputs: TensorInputSpec[] = [];
      let baseIndex = -1;
      const seen = new Set<string>();
      const missing: number[] = [];
      sources.forEach((src, j) => {
        const ck = checkpoints.get(src.model)!;
        const adapter = adapters.get(src.model);
        let tn = inNames[j];
        let entry: CheckpointTensor | undefined = adapter?.replacements.get(tn) ?? ck.tensors.get(tn);
        if (!entry && tn === LM_HEAD) {
          entry = adapter?.replacements.get(EMBED) ?? ck.tensors.get(EMBED); // tied embeddings: mergekit's tied_names fallback
          if (entry) {
            tn = EMBED;
            if (ck.config?.tie_word_embeddings === false) {
              warnings.push(
                `model '${src.model}' has no ${LM_HEAD} although its config.json sets tie_word_embeddings: false; its ${EMBED} is used in its place (mergekit's tied_names) — the checkpoint may be incomplete`,
              );
            }
          }
        }
        if (!entry) {
          missing.push(j);
          return;
        }
        if (src.model === baseRef && !seen.has(src.model)) baseIndex = inputs.length;
        seen.add(src.model);
        const scopes = [src.parameters, slice?.parameters, mod.parameters, config.parameters];
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
        const delta = adapter && !adapter.replacements.has(tn) ? adapter.deltas.get(tn) : undefined;
        if (delta) {
          const transpose = orientDelta(delta, entry.shape, `${src.model}: ${tn}`);
          spec.lora = { a: sourceOf(delta.a, delta.a.name), b: sourceOf(delta.b, delta.b.name), scale: delta.scale, transpose };
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
        throw new MergeloomError(
          "CHECKPOINT_MISSING",
          `plan ${outName}: base model '${baseRef}' has no tensor '${outName}', and '${method.name}' needs the base for every tensor`,
        );
      }
      let shape: number[];
      let vocab: TensorSpec["vocab"];
      if (tokenizer && isEmbeddingTensor(outName)) {
        const cols = inputs[0].source.shape[1];
        if (!inputs.every((i) => i.source.shape.length === 2 && i.source.shape[1] === cols)) {
          throw new ShapeMismatchError(
            `plan ${outName}: embedding widths differ (${inputs.map((i) => `'${i.model}' [${i.source.shape}]`).join(" vs ")}); embeddings must have the same hidden size to merge vocabularies`,
          );
        }
        const e = planEmbedding(outName, inputs, tokenizer, {
          tokens: config.tokenizer?.tokens,
          padToMultipleOf: config.tokenizer?.padToMultipleOf,
          baseModel: baseRef,
          dtype: config.dtype ?? inputs[0].source.dtype,
        });
        inputs.forEach((inp, k) => (inp.rowMap = e.rowMaps[k]));
        vocab = e.vocab;
        shape = [e.rows, cols];
        vocabSize = e.rows;
      } else {
        shape = commonShape(outName, inputs);
      }
      const params = resolveParams(method.params, [slice?.parameters, mod.parameters, config.parameters], outName, t, false, outName);
      const float = inputs.every((i) => isMergeableDType(i.source.dtype));
      const tensor: PlannedTensor = {
        name: outName,
        shape,
        outDtype: float ? outDtype! : inputs[0].source.dtype,
        method: method.name,
        params,
        inputs,
        baseIndex,
        layer,
        ...(vocab ? { vocab } : {}),
      };
      if (torch && float) {
        tensor.computeDtype = mergekitComputeDtype(config.dtype, inputs, baseIndex, method.name);
        if (torch === "1.13") tensor.computeTorch = "1.13";
        checkMergekitTensor(method.name, tensor.computeDtype, outName, shape, torch);
        if (!config.outDtype) tensor.outDtype = mergekitResultDtype(method.name) ?? tensor.outDtype;
      }
      const ctx = { tensorName: outName, shape, baseIndex, params, inputs: inputs.map((i) => ({ model: i.model, params: i.params })) };
      method.check?.(ctx);
      dropped.add(ctx);
      tensors.push(tensor);
    };

    // Pre weights from the first slice's sources, post weights from the last slice's, at t = 0.
    const first = slices[0];
    const last = slices[slices.length - 1];
    for (const name of layout.pre)
      planTensor(
        name,
        first.sources.map(() => name),
        first.sources,
        first,
        0,
        -1,
      );
    let outLayer = 0; // mergekit numbers each module's layers from 0
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
    for (const name of layout.post)
      planTensor(
        name,
        last.sources.map(() => name),
        last.sources,
        last,
        0,
        -2,
      );
    // The output config's layer count is the text decoder's (the only module, or the one so named).
    if (whole || mod.name === "text_decoder" || numLayers === undefined) numLayers = outLayer;
  }
  warnings.push(...dropped.check(opts.droppedModels ?? "refuse"));
  if (tensors.length === 0) {
    throw new MergeloomError("CHECKPOINT_MISSING", `plan: the models hold no tensors to merge for this config; check the model paths and layer ranges`);
  }

  let bytesToRead = 0;
  let bytesToWrite = 0;
  for (const t of tensors) {
    for (const i of t.inputs) {
      bytesToRead += i.source.byteLength;
      if (i.lora) bytesToRead += i.lora.a.byteLength + i.lora.b.byteLength;
      for (const v of i.addVectors ?? []) bytesToRead += v.source.byteLength;
    }
    bytesToWrite += numelOf(t.shape) * DTYPE_BYTES[t.outDtype];
  }
  return {
    config,
    method,
    checkpoints,
    tensors,
    numLayers: numLayers ?? 0,
    outDtype: outDtype!,
    configModel: config.baseModel ?? firstRef!,
    bytesToRead,
    bytesToWrite,
    warnings: [...new Set(warnings)],
    pins,
    ...(tokenizerDonor ? { tokenizerDonor } : {}),
    ...(tokenizer ? { tokenizer, vocabSize: vocabSize ?? tokenizer.vocab.size } : {}),
  };
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
      if (spec.required && !isBase)
        throw new ParamError(`plan ${what}: missing required parameter '${name}'; set it under the model's parameters or at the top level`);
      continue;
    }
    if (spec.kind === "number" && typeof v !== "number") throw new ParamError(`plan ${what}: parameter '${name}' must be a number, got ${JSON.stringify(v)}`);
    if (spec.kind === "bool" && typeof v !== "boolean")
      throw new ParamError(`plan ${what}: parameter '${name}' must be true or false, got ${JSON.stringify(v)}`);
    out[name] = v;
  }
  return out;
}

function vocabSizeOf(cfg: Record<string, unknown> | undefined): number | undefined {
  const v = cfg?.vocab_size ?? (cfg?.text_config as Record<string, unknown> | undefined)?.vocab_size;
  return typeof v === "number" ? v : undefined;
}

/** Reads every model's tokenizer.json and builds the merged tokenizer (mergekit's BuildTokenizer). */
async function mergeTokenizers(
  config: MergeConfig,
  refs: Set<string>,
  checkpoints: Map<string, Checkpoint>,
  warnings: string[],
): Promise<MergedTokenizer | undefined> {
  const tok = config.tokenizer!;
  const order = [...refs];
  const base = config.baseModel ?? order[0];
  const tokenizers = new Map<string, TokenizerJson>();
  const vocabSizes = new Map<string, number>();
  const sources = new Set(order);
  if (tok.source !== "union" && tok.source !== "base") sources.add(tok.source);
  await Promise.all(
    [...sources].map(async (r) => {
      const t = await readTokenizerJson(checkpoints.get(r)?.location ?? resolveModelReference(r));
      if (t) tokenizers.set(r, t);
      const n = vocabSizeOf(checkpoints.get(r)?.config);
      if (n !== undefined) vocabSizes.set(r, n);
    }),
  );
  // A non-union source without a fast tokenizer (e.g. a custom tokenizer): its files are copied and
  // the embeddings keep their rows, as before tokenizer merging existed; mergekit would fail here.
  const donor = tok.source === "union" || tok.source === "base" ? base : tok.source;
  if (tok.source !== "union" && !tokenizers.has(donor)) {
    warnings.push(
      `tokenizer source '${donor}' has no tokenizer.json, so the vocabularies cannot be merged; its tokenizer files are copied and the embeddings are not re-ordered`,
    );
    return undefined;
  }
  return buildTokenizer({ base, refs: order, source: tok.source, addTokens: Object.keys(tok.tokens ?? {}), tokenizers, vocabSizes });
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
