/**
 * An explicit `tokenizer_source` must hold a tokenizer: a directory with tokenizer files, each a
 * regular file. Without this, `tokenizer_source: /etc` merged "successfully" with no tokenizer.
 * Remote sources are left to the reader that fetches them; 'union' is planned elsewhere.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError } from "../errors/index.js";
import { localPath } from "../driver/tensor-io.js";
import { TOKENIZER_FILES } from "./hf-files.js";
import { modelLocation } from "../storage/model-location.js";
import { notRegularDetail } from "../storage/regular-file.js";

/** Files that define a tokenizer; generation_config.json or a chat template alone do not. */
const DEFINING = ["tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json"];

/**
 * `source` is the configured value; `baseDir` the directory 'base' stands for (the base model, or
 * the first model when there is none).
 */
export async function checkTokenizerSource(source: string | undefined, baseDir: string | undefined): Promise<void> {
  if (source === undefined || source === "union") return;
  const dir = source === "base" ? baseDir : localPath(modelLocation(source));
  if (dir === undefined) return;
  const field = "tokenizer_source";
  const where = dir === source ? `'${source}'` : `'${source}' (${dir})`;
  let isDir: boolean;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch (err) {
    throw new ConfigError(field, `${where} does not exist; name a model directory with tokenizer files`, { cause: err });
  }
  if (!isDir) throw new ConfigError(field, `${where} is not a directory; name a model directory with tokenizer files`);
  const present: string[] = [];
  for (const name of TOKENIZER_FILES) {
    const file = join(dir, name);
    const st = await stat(file).catch(() => undefined);
    if (!st) continue;
    if (!st.isFile()) throw new ConfigError(field, `${file} ${notRegularDetail(st)}`);
    present.push(name);
  }
  if (!present.some((n) => DEFINING.includes(n))) {
    throw new ConfigError(field, `${where} has no tokenizer files (looked for ${DEFINING.join(", ")}); name a model directory that has a tokenizer`);
  }
}
