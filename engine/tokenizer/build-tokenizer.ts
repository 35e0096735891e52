/**
 * The merged tokenizer and, for every input model, where each of its tokens moves: mergekit's
 * build_tokenizer (mergekit/tokenizer/build.py), over tokenizer.json files.
 *
 * - The base tokenizer is stripped of tokens at ids ≥ its config's vocab_size.
 * - `union`: the stripped base, then every token of every model (base first, then the others in
 *   config order) that the base lacks, as a plain added token, then every model's added tokens
 *   (first settings win) — with the ids the `tokenizers` library assigns when adding them: an
 *   existing token keeps its id (its flags are replaced), a new one goes after the largest id.
 * - `base`: the stripped base. A model reference: that model's tokenizer, unstripped.
 * - `tokenizer.tokens` keys are then added as plain tokens.
 * Orders that mergekit takes from Python sets and Rust hash maps (and so vary from run to run)
 * are fixed here: models in config order, each model's tokens by id.
 */
import { ConfigError } from "../errors/index.js";
import { fullVocab, sameAddedToken, type AddedToken, type TokenizerJson } from "./tokenizer-json.js";

export interface TokenizerInputs {
  /** The base model reference (mergekit: base_model, else the first referenced model). */
  base: string;
  /** Every referenced model, in config order. */
  refs: readonly string[];
  /** 'union' | 'base' | a model reference. */
  source: string;
  /** Keys of `tokenizer.tokens`. */
  addTokens: readonly string[];
  /** tokenizer.json by model; absent when the model has none (mergekit then assumes the base's). */
  tokenizers: ReadonlyMap<string, TokenizerJson>;
  /** config.json vocab_size by model, when set. */
  vocabSizes: ReadonlyMap<string, number>;
}

export interface MergedTokenizer {
  tokenizer: TokenizerJson;
  /** Token → id of the merged tokenizer (`get_vocab()`). */
  vocab: Map<string, number>;
  /** Per model: for each merged id, the model's id of that token, or -1. */
  permutations: Map<string, Int32Array>;
  /** Token → id of each model's own tokenizer (the base's for models without one). */
  originalVocabs: Map<string, Map<string, number>>;
  warnings: string[];
}

const PLAIN = { single_word: false, lstrip: false, rstrip: false, normalized: true, special: false };

/** The added-token bookkeeping of the `tokenizers` library's AddedVocabulary.add_tokens. */
class MutableTokenizer {
  readonly added = new Map<string, AddedToken>();
  constructor(
    readonly modelVocab: Map<string, number>,
    added: readonly AddedToken[],
  ) {
    for (const a of added) this.added.set(a.content, { ...a });
  }

  add(tok: Omit<AddedToken, "id">): void {
    if (tok.content === "") return;
    const existing = this.added.get(tok.content);
    if (existing && sameAddedToken(existing, { ...tok, id: existing.id })) return;
    const id = existing?.id ?? this.modelVocab.get(tok.content) ?? this.nextId();
    this.added.set(tok.content, { ...tok, id });
  }

  private nextId(): number {
    const size = this.modelVocab.size;
    let max = -1;
    for (const a of this.added.values()) max = Math.max(max, a.id);
    return max >= 0 && (max >= size || size === 0) ? max + 1 : size;
  }

  vocab(): Map<string, number> {
    return fullVocab({ modelVocab: this.modelVocab, added: [...this.added.values()] });
  }

  toJson(from: TokenizerJson): TokenizerJson {
    const added = [...this.added.values()].sort((a, b) => a.id - b.id);
    const json = structuredClone(from.json);
    json.added_tokens = added.map((a) => ({ ...a }));
    const model = json.model as Record<string, unknown>;
    if (!Array.isArray(model.vocab)) model.vocab = Object.fromEntries([...this.modelVocab].sort((a, b) => a[1] - b[1]));
    return { json, modelVocab: this.modelVocab, added, file: from.file };
  }
}

/** mergekit's get_stripped_tokenizer: drops tokens at ids ≥ vocab_size (BPE only, as there). */
function stripTokenizer(t: TokenizerJson, vocabSize: number | undefined, ref: string): TokenizerJson {
  const size = vocabSize ?? fullVocab(t).size;
  const unused = new Set([...fullVocab(t)].filter(([, id]) => id >= size).map(([tok]) => tok));
  if (unused.size === 0) return t;
  const model = t.json.model as { type?: string; merges?: unknown[] };
  if (model.type !== "BPE") {
    throw new ConfigError(
      "tokenizer",
      `the tokenizer of '${ref}' has tokens at ids ≥ vocab_size ${size} and is a ${model.type} model; mergekit strips only BPE tokenizers, so it cannot be merged`,
    );
  }
  const json = structuredClone(t.json);
  const m = json.model as { vocab: Record<string, number>; merges?: unknown[] };
  for (const tok of unused) delete m.vocab[tok];
  m.merges = (m.merges ?? []).filter((e) => {
    const toks = typeof e === "string" ? e.split(" ") : (e as string[]);
    return !toks.some((x) => unused.has(x));
  });
  json.added_tokens = (json.added_tokens as AddedToken[]).filter((a) => a.id < size);
  const modelVocab = new Map([...t.modelVocab].filter(([tok]) => !unused.has(tok)));
  return { json, modelVocab, added: t.added.filter((a) => a.id < size), file: t.file };
}

export function buildTokenizer(inp: TokenizerInputs): MergedTokenizer {
  const warnings: string[] = [];
  const baseTok = inp.tokenizers.get(inp.base);
  if (!baseTok)
    throw new ConfigError("tokenizer", `the base model '${inp.base}' has no tokenizer.json; tokenizer merging needs a fast (tokenizer.json) tokenizer for it`);
  const stripped = stripTokenizer(baseTok, inp.vocabSizes.get(inp.base), inp.base);
  // mergekit's `tokenizers` dict: the base first, then every other model that has one.
  const order = [inp.base, ...inp.refs.filter((r) => r !== inp.base)];
  const toks = new Map<string, TokenizerJson>([[inp.base, stripped]]);
  for (const r of order.slice(1)) {
    const t = inp.tokenizers.get(r);
    if (t) toks.set(r, t);
    else warnings.push(`model '${r}' has no tokenizer.json; its vocabulary is taken to be the base model's (as mergekit does)`);
  }
  const vocabSizeOf = (r: string, t: TokenizerJson) => inp.vocabSizes.get(r) ?? fullVocab(t).size;

  let out: MutableTokenizer;
  let outFrom: TokenizerJson;
  if (inp.source === "base") {
    out = new MutableTokenizer(new Map(stripped.modelVocab), stripped.added);
    outFrom = stripped;
  } else if (inp.source === "union") {
    const outVocab = new Set<string>();
    const outAdded = new Map<string, AddedToken>();
    const warned = new Set<string>();
    for (const [r, t] of toks) {
      const size = vocabSizeOf(r, t);
      for (const [tok, id] of [...fullVocab(t)].sort((a, b) => a[1] - b[1])) if (id < size) outVocab.add(tok);
      for (const a of [...t.added].sort((x, y) => x.id - y.id)) {
        if (a.id >= size) continue;
        const prev = outAdded.get(a.content);
        if (prev) {
          if (!sameAddedToken(prev, a) && !warned.has(a.content)) {
            warnings.push(`token '${a.content}' is added with different settings by several models; the first one's are used (as mergekit does)`);
            warned.add(a.content);
          }
          continue;
        }
        outAdded.set(a.content, a);
      }
    }
    out = new MutableTokenizer(new Map(stripped.modelVocab), stripped.added);
    outFrom = stripped;
    const baseVocab = fullVocab(stripped);
    for (const tok of outVocab) if (!outAdded.has(tok) && !baseVocab.has(tok)) out.add({ content: tok, ...PLAIN });
    for (const a of outAdded.values()) out.add(a);
  } else {
    const t = inp.tokenizers.get(inp.source);
    if (!t) throw new ConfigError("tokenizer", `tokenizer source '${inp.source}' has no tokenizer.json`);
    out = new MutableTokenizer(new Map(t.modelVocab), t.added);
    outFrom = t;
  }
  for (const tok of inp.addTokens) out.add({ content: tok, ...PLAIN });

  const vocab = out.vocab();
  const permutations = new Map<string, Int32Array>();
  const originalVocabs = new Map<string, Map<string, number>>();
  for (const r of inp.refs) {
    const t = toks.get(r) ?? stripped;
    const modelVocab = fullVocab(t);
    originalVocabs.set(r, modelVocab);
    const size = inp.vocabSizes.get(r) ?? modelVocab.size;
    const p = new Int32Array(vocab.size).fill(-1);
    for (const [tok, id] of vocab) {
      const orig = modelVocab.get(tok);
      if (id >= vocab.size)
        throw new ConfigError("tokenizer", `merged token '${tok}' has id ${id} beyond the vocabulary size ${vocab.size} (the tokenizer has gaps in its ids)`);
      if (orig !== undefined && orig < size) p[id] = orig;
    }
    permutations.set(r, p);
  }
  return { tokenizer: out.toJson(outFrom), vocab, permutations, originalVocabs, warnings };
}
