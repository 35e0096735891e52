/**
 * Writes a merged tokenizer the way mergekit's `tokenizer.save_pretrained` leaves it: tokenizer.json
 * with the merged added tokens, tokenizer_config.json whose added_tokens_decoder lists them, and
 * no slow-tokenizer files (vocab.json, merges.txt, tokenizer.model, added_tokens.json), which
 * would describe the unmerged vocabulary.
 */
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { StorageError } from "../errors/index.js";
import type { MergedTokenizer } from "./build-tokenizer.js";

const STALE = ["vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json"];

export async function writeMergedTokenizer(dir: string, merged: MergedTokenizer): Promise<void> {
  const write = async (name: string, value: unknown) => {
    try {
      await writeFile(join(dir, name), JSON.stringify(value, null, 2) + "\n");
    } catch (err) {
      throw new StorageError(`write ${join(dir, name)}: ${(err as Error).message}`, { cause: err });
    }
  };
  await write("tokenizer.json", merged.tokenizer.json);
  let cfg: Record<string, unknown> = {};
  try {
    cfg = JSON.parse(await readFile(join(dir, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT")
      throw new StorageError(`read ${join(dir, "tokenizer_config.json")}: ${(err as Error).message}`, { cause: err });
  }
  const decoder: Record<string, unknown> = {};
  for (const a of merged.tokenizer.added) {
    decoder[String(a.id)] = {
      content: a.content,
      lstrip: a.lstrip,
      normalized: a.normalized,
      rstrip: a.rstrip,
      single_word: a.single_word,
      special: a.special,
    };
  }
  cfg.added_tokens_decoder = decoder;
  await write("tokenizer_config.json", cfg);
  for (const name of STALE) await rm(join(dir, name), { force: true });
}
