/**
 * A Hugging Face fast tokenizer (tokenizer.json) as far as tokenizer merging needs it: the model's
 * vocabulary, the added tokens with their flags, and `get_vocab()` (both together), read without
 * running the tokenizer.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { CheckpointError } from "../errors/index.js";
import { fetchSmallFile } from "../storage/http-byte-source.js";
import { isHttpUri } from "../storage/open-byte-source.js";

/** One `added_tokens` entry of tokenizer.json (transformers' AddedToken). */
export interface AddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

export interface TokenizerJson {
  /** The parsed file, kept whole so that writing it back changes only what merging changes. */
  json: Record<string, unknown>;
  /** The model's own vocabulary (without added tokens). */
  modelVocab: Map<string, number>;
  added: AddedToken[];
  /** Where it was read from (messages). */
  file: string;
}

export async function readTextFile(location: string, name: string): Promise<string | undefined> {
  if (isHttpUri(location)) {
    const raw = await fetchSmallFile(new URL(name, location.endsWith("/") ? location : `${location}/`).href);
    return raw ? new TextDecoder().decode(raw) : undefined;
  }
  try {
    return await readFile(join(location, name), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Reads `<location>/tokenizer.json`; undefined when the file is absent. */
export async function readTokenizerJson(location: string): Promise<TokenizerJson | undefined> {
  const file = isHttpUri(location) ? `${location}tokenizer.json` : join(location, "tokenizer.json");
  const text = await readTextFile(location, "tokenizer.json");
  if (text === undefined) return undefined;
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new CheckpointError(file, `invalid JSON (${(err as Error).message}); re-save the tokenizer with transformers`, { cause: err });
  }
  return parseTokenizerJson(json, file);
}

export function parseTokenizerJson(json: Record<string, unknown>, file: string): TokenizerJson {
  const model = json.model as { type?: string; vocab?: unknown } | undefined;
  const modelVocab = new Map<string, number>();
  if (!model || typeof model !== "object") throw new CheckpointError(file, "no `model` section; not a Hugging Face tokenizer.json");
  if (Array.isArray(model.vocab)) {
    // Unigram: [[piece, score], ...], the id is the position.
    model.vocab.forEach((e, i) => modelVocab.set(String((e as unknown[])[0]), i));
  } else if (model.vocab && typeof model.vocab === "object") {
    for (const [tok, id] of Object.entries(model.vocab as Record<string, unknown>)) {
      if (typeof id !== "number") throw new CheckpointError(file, `model.vocab['${tok}'] is not a number`);
      modelVocab.set(tok, id);
    }
  } else {
    throw new CheckpointError(file, `model type ${model.type ?? "?"} has no vocabulary; tokenizer merging needs a BPE, Unigram, WordPiece or WordLevel model`);
  }
  const added: AddedToken[] = [];
  for (const e of (json.added_tokens as unknown[] | undefined) ?? []) {
    const t = e as Partial<AddedToken>;
    if (typeof t.id !== "number" || typeof t.content !== "string") throw new CheckpointError(file, "an added_tokens entry lacks id or content");
    added.push({
      id: t.id,
      content: t.content,
      single_word: t.single_word ?? false,
      lstrip: t.lstrip ?? false,
      rstrip: t.rstrip ?? false,
      normalized: t.normalized ?? !(t.special ?? false),
      special: t.special ?? false,
    });
  }
  return { json, modelVocab, added, file };
}

/** transformers' `get_vocab()`: the model vocabulary with the added tokens over it. */
export function fullVocab(t: Pick<TokenizerJson, "modelVocab" | "added">): Map<string, number> {
  const v = new Map(t.modelVocab);
  for (const a of t.added) v.set(a.content, a.id);
  return v;
}

export function sameAddedToken(a: AddedToken, b: AddedToken): boolean {
  return (
    a.content === b.content &&
    a.single_word === b.single_word &&
    a.lstrip === b.lstrip &&
    a.rstrip === b.rstrip &&
    a.normalized === b.normalized &&
    a.special === b.special
  );
}
