/**
 * A mergekit YAML config after validation, in one normalized shape: the `models:` form becomes a
 * single slice whose sources have no `layer_range` (whole model), and model references are the
 * paths as written (resolved relative to the working directory later).
 */
import type { FloatDType } from "@mergeloom/proto/dtype";
import type { ParamValue } from "../methods/params.js";

/** One `{filter, value}` entry; the first entry whose filter matches the tensor name wins. */
export interface ConditionalParam {
  /** Substring of the tensor name; absent or "*" matches every tensor. */
  filter?: string;
  /** A scalar or a gradient (never another conditional, as in mergekit). */
  value: ParamValue | ParamValue[];
}

/**
 * A parameter setting as written: a scalar; a list of numbers (piecewise-linear gradient over the
 * slice), of booleans or of strings (step lists); or a list of conditionals.
 */
export type ParamExpr = ParamValue | ParamValue[] | ConditionalParam[];

export type ParamScope = Record<string, ParamExpr>;

/**
 * mergeloom extension (mergekit ignores this key): task vectors added to one model before merging.
 * `vectors: [{path: ./reasoning-vector, scale: 0.5}]` replaces each tensor X of that model by
 * X + scale·Δ, where Δ is the same tensor of the task-vector checkpoint at `path`. A negative scale
 * subtracts the skill ("forgetting"). `scale` defaults to 1.
 */
export interface TaskVectorRef {
  path: string;
  scale: number;
}

export interface SourceConfig {
  /** Model path as written in the config. */
  model: string;
  /** `[start, end)` input layers; absent in the `models:` form, meaning the whole model. */
  layerRange?: [number, number];
  /** Per-model ("tensor") parameters only. */
  parameters?: ParamScope;
  vectors?: TaskVectorRef[];
}

export interface SliceConfig {
  sources: SourceConfig[];
  parameters?: ParamScope;
  /** This slice's base model, overriding the top-level one (mergekit's `ConfigReader.base_model`). */
  baseModel?: string;
}

/** Where a token's default embedding comes from (mergekit's TokenEmbeddingConfig.source). */
export type TokenEmbeddingSource =
  { kind: "model_token"; model: string; tokenId?: number; token?: string } | { kind: "zero" } | { kind: "model"; model: string };

export interface TokenEmbeddingConfig {
  source?: TokenEmbeddingSource;
  /** Use the default embedding even for models that have the token. */
  force: boolean;
}

/** mergekit's `tokenizer:` block (or `tokenizer_source: X`, which is `{source: X}`). */
export interface TokenizerConfig {
  /** 'union' | 'base' | a model reference. */
  source: string;
  tokens?: Record<string, TokenEmbeddingConfig>;
  padToMultipleOf?: number;
}

/** One entry of mergekit's `modules:` (e.g. text_decoder, vision_tower), planned on its own tensors. */
export interface ModuleConfig {
  name: string;
  slices: SliceConfig[];
  fromModels: boolean;
  parameters?: ParamScope;
}

export interface MergeConfig {
  mergeMethod: string;
  baseModel?: string;
  /** True when the `models:` form was used (the planner appends a base that is not listed). */
  fromModels: boolean;
  /** Every slice (of every module, when `modules:` is used). */
  slices: SliceConfig[];
  /** `modules:` configs: each module's own slices; absent otherwise. */
  modules?: ModuleConfig[];
  /** Top-level parameters: global ones and defaults for per-model ones. */
  parameters?: ParamScope;
  /** Compute dtype: every input is cast to it on load. Absent = the checkpoint's stored dtype. */
  dtype?: FloatDType;
  /** Dtype of the saved tensors. Absent = the compute dtype. */
  outDtype?: FloatDType;
  /** 'base' | 'union' | a model path (from `tokenizer_source` or `tokenizer.source`). */
  tokenizerSource?: string;
  /** Set with tokenizerSource: embeddings are then rearranged to the merged vocabulary. */
  tokenizer?: TokenizerConfig;
  /** A template name (e.g. `chatml`, `auto`) or a Jinja template, as written. */
  chatTemplate?: string;
  /**
   * What mergekit accepts but ignores (unknown keys and parameters, duplicate keys or models), one
   * line each, emitted as warning events; empty with `--strict`, which makes each an error.
   */
  warnings: string[];
  /** The YAML text as read, for the model card. */
  sourceText: string;
  /** File name for messages. */
  file: string;
}
