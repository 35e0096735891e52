/**
 * mergekit's PermutedEmbeddings (mergekit/tokenizer/embed.py) as plan data: for one embedding
 * tensor (embed_tokens, lm_head), which stored row of each input fills each row of the merged
 * vocabulary, and the default rows for tokens an input lacks.
 *
 * A token's default embedding, unless `tokenizer.tokens` names one: the only model that has it
 * (donor); a zero row if none has it; the base model's row if the base has it; otherwise the mean
 * over the models that have it. An input uses its own row for a token it has (unless `force`),
 * the default otherwise; rows past the vocabulary (pad_to_multiple_of) are the mean of the
 * input's vocabulary rows. The models are the tensor's inputs in config order (mergekit iterates
 * a Python set, so its order of summation varies between runs).
 */
import { ConfigError } from "../errors/index.js";
import type { DType } from "@mergeloom/proto/dtype";
import type { DefaultRow, RowMap, TensorInputSpec, VocabSpec } from "@mergeloom/proto/merge-task";
import type { TokenEmbeddingConfig } from "../config/merge-config.js";
import type { MergedTokenizer } from "./build-tokenizer.js";

export interface EmbeddingPlan {
  vocab: VocabSpec;
  rowMaps: RowMap[];
  /** Output rows: the vocabulary padded to pad_to_multiple_of. */
  rows: number;
}

export function paddedVocabSize(size: number, multiple: number | undefined): number {
  return multiple && size % multiple ? Math.ceil(size / multiple) * multiple : size;
}

export function planEmbedding(
  tensorName: string,
  inputs: readonly Pick<TensorInputSpec, "model" | "source">[],
  merged: MergedTokenizer,
  opts: { tokens?: Record<string, TokenEmbeddingConfig>; padToMultipleOf?: number; baseModel?: string; dtype: DType },
): EmbeddingPlan {
  const models = inputs.map((i) => i.model);
  const perms = models.map((m) => {
    const p = merged.permutations.get(m);
    if (!p) throw new ConfigError("tokenizer", `plan ${tensorName}: no vocabulary for model '${m}'`);
    return p;
  });
  const V = merged.vocab.size;
  const tokens = opts.tokens ?? {};
  const baseIdx = opts.baseModel === undefined ? -1 : models.indexOf(opts.baseModel);
  const idOf = [...merged.vocab].sort((a, b) => a[1] - b[1]);

  const defaults: DefaultRow[] = [];
  const defaultFor = new Map<number, DefaultRow>();
  const needed = (id: number, token: string): boolean => {
    const force = tokens[token]?.force ?? false;
    return force || perms.some((p) => p[id] < 0);
  };
  for (const [token, id] of idOf) {
    if (!needed(id, token)) continue;
    const cfg = tokens[token];
    const has = perms.map((p, i) => (p[id] >= 0 ? i : -1)).filter((i) => i >= 0);
    let from: Array<[number, number]>;
    if (cfg) {
      from = configuredDefault(tensorName, token, id, cfg, models, perms, merged, inputs);
    } else if (has.length === 1) {
      from = [[has[0], perms[has[0]][id]]];
    } else if (has.length === 0) {
      from = [];
    } else if (baseIdx >= 0 && perms[baseIdx][id] >= 0) {
      from = [[baseIdx, perms[baseIdx][id]]];
    } else {
      from = has.map((i) => [i, perms[i][id]] as [number, number]);
    }
    const d = { row: id, from };
    defaults.push(d);
    defaultFor.set(id, d);
  }

  const rowMaps = perms.map((p): RowMap => {
    const runs: number[] = [];
    for (const [token, id] of idOf) {
      if (p[id] < 0 || (tokens[token]?.force ?? false)) continue;
      const n = runs.length;
      if (n > 0 && runs[n - 3] + runs[n - 1] === id && runs[n - 2] + runs[n - 1] === p[id]) runs[n - 1]++;
      else runs.push(id, p[id], 1);
    }
    return { runs };
  });
  return { vocab: { rows: V, defaults, dtype: opts.dtype }, rowMaps, rows: paddedVocabSize(V, opts.padToMultipleOf) };
}

/** mergekit's compute_default_embedding for a token named in `tokenizer.tokens`. */
function configuredDefault(
  tensorName: string,
  token: string,
  id: number,
  cfg: TokenEmbeddingConfig,
  models: readonly string[],
  perms: readonly Int32Array[],
  merged: MergedTokenizer,
  inputs: readonly Pick<TensorInputSpec, "model" | "source">[],
): Array<[number, number]> {
  const where = `tokenizer.tokens.${token}.source`;
  const src = cfg.source;
  if (!src)
    throw new ConfigError(where, `token '${token}' has no source, and mergekit cannot build its embedding without one; add source: <model> or {kind: zero}`);
  if (src.kind === "zero") return [];
  const idx = models.indexOf(src.model);
  if (idx < 0) throw new ConfigError(where, `model '${src.model}' is not an input of ${tensorName}; name one of: ${models.join(", ")}`);
  if (src.kind === "model") {
    if (perms[idx][id] < 0)
      throw new ConfigError(where, `token '${token}' is not in the vocabulary of '${src.model}'; pick a model that has it or {kind: zero}`);
    return [[idx, perms[idx][id]]];
  }
  let srcId = src.tokenId;
  if (srcId === undefined) {
    srcId = merged.originalVocabs.get(src.model)?.get(src.token!);
    if (srcId === undefined) throw new ConfigError(`${where}.token`, `token '${src.token}' is not in the tokenizer of '${src.model}'`);
  }
  const rows = inputs[idx].source.shape[0];
  if (srcId < 0 || srcId >= rows) throw new ConfigError(`${where}.token_id`, `token id ${srcId} is out of range for '${src.model}' (${rows} rows)`);
  return [[idx, srcId]];
}

/** Tensors mergekit's architecture files mark `is_embed`: rows indexed by token id. */
export function isEmbeddingTensor(name: string): boolean {
  return /(?:^|\.)(?:embed_tokens|lm_head|wte|embed_out|word_embeddings)\.weight$/.test(name);
}
