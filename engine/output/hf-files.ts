/** The Hugging Face files around the weights: config.json, tokenizer files and the model card. */
import { chmod, copyFile, readFile, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { stringify } from "yaml";
import { CheckpointError, StorageError } from "../errors/index.js";
import { resolveChatTemplate } from "./chat-templates.js";
import { fsErrorDetail } from "../storage/fs-error.js";
import { isRegularFileIfPresent } from "../storage/regular-file.js";

/** Files copied from the tokenizer donor when present (mergekit's list plus vocab/generation files). */
export const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "tokenizer.model",
  "vocab.json",
  "merges.txt",
  "special_tokens_map.json",
  "added_tokens.json",
  "generation_config.json",
  "chat_template.jinja",
] as const;

/** Writes config.json: the source config with the layer count and dtype of the merged model. */
export async function writeModelConfig(
  outDir: string,
  source: Record<string, unknown>,
  changes: { numHiddenLayers?: number; torchDtype?: string },
): Promise<void> {
  const cfg: Record<string, unknown> = { ...source };
  if (changes.numHiddenLayers !== undefined) cfg.num_hidden_layers = changes.numHiddenLayers;
  if (changes.torchDtype !== undefined) {
    cfg.torch_dtype = changes.torchDtype;
    // transformers >= 4.56 writes `dtype`; keep both in step when the source has it.
    if ("dtype" in cfg) cfg.dtype = changes.torchDtype;
  }
  await writeText(join(outDir, "config.json"), JSON.stringify(cfg, null, 2) + "\n");
}

export interface CopyTokenizerOptions {
  /**
   * mergekit's `chat_template`: a name (alpaca, chatml, exaone, llama3), "auto" (the most common
   * template among `templateSources`), or a literal Jinja template.
   */
  chatTemplate?: string;
  /** Model directories "auto" votes over; defaults to the donor directory. */
  templateSources?: readonly string[];
}

/** Copies the tokenizer files that exist in `fromDir`; returns the names copied. */
export async function copyTokenizerFiles(fromDir: string, toDir: string, opts: CopyTokenizerOptions = {}): Promise<string[]> {
  const copied: string[] = [];
  for (const name of TOKENIZER_FILES) {
    // A FIFO or device would block copyFile or copy garbage; the plan refuses them too.
    if (!(await isRegularFileIfPresent(join(fromDir, name)))) continue;
    try {
      await copyFile(join(fromDir, name), join(toDir, name));
      // copyFile keeps the source mode; a read-only donor (a cache, a fixture) must not make the output read-only.
      await chmod(join(toDir, name), 0o644);
      copied.push(name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw new StorageError(`copy tokenizer file ${join(fromDir, name)} to ${join(toDir, name)}: ${fsErrorDetail(err)}`, { cause: err });
    }
  }
  if (opts.chatTemplate) {
    const template = opts.chatTemplate === "auto" ? await pluralityTemplate(opts.templateSources ?? [fromDir]) : resolveChatTemplate(opts.chatTemplate);
    if (template !== undefined) {
      const cfgPath = join(toDir, "tokenizer_config.json");
      const cfg = copied.includes("tokenizer_config.json") ? await readJsonObject(cfgPath) : {};
      cfg.chat_template = template;
      await writeText(cfgPath, JSON.stringify(cfg, null, 2) + "\n");
      if (!copied.includes("tokenizer_config.json")) copied.push("tokenizer_config.json");
      // Recent transformers prefer chat_template.jinja over tokenizer_config.json; keep them equal.
      if (copied.includes("chat_template.jinja")) await writeText(join(toDir, "chat_template.jinja"), template);
    }
  }
  return copied;
}

/** mergekit's "auto": the template most input models share (first seen wins ties); undefined if none has one. */
async function pluralityTemplate(dirs: readonly string[]): Promise<string | undefined> {
  const counts = new Map<string, number>();
  for (const dir of dirs) {
    const t = await readTemplate(dir);
    if (t) counts.set(t, (counts.get(t) ?? 0) + 1);
  }
  let best: string | undefined;
  for (const [t, n] of counts) if (best === undefined || n > counts.get(best)!) best = t;
  return best;
}

async function readTemplate(dir: string): Promise<string | undefined> {
  try {
    const t = (await readFile(join(dir, "chat_template.jinja"), "utf8")).trim();
    if (t) return t;
  } catch {
    // Fall back to tokenizer_config.json.
  }
  let cfg: Record<string, unknown>;
  try {
    cfg = await readJsonObject(join(dir, "tokenizer_config.json"));
  } catch (err) {
    if ((err as { cause?: NodeJS.ErrnoException }).cause?.code === "ENOENT") return undefined;
    throw err;
  }
  let t = cfg.chat_template;
  // Multi-template tokenizers store [{name, template}]; mergekit takes the "default" one.
  if (Array.isArray(t)) t = (t as { name?: unknown; template?: unknown }[]).find((x) => x?.name === "default")?.template;
  return typeof t === "string" && t.trim() ? t.trim() : undefined;
}

export interface ModelCardInfo {
  /** The merge config exactly as the user wrote it. */
  yaml: string;
  method: string;
  models: string[];
  baseModel?: string;
  /** Hub references → the commit sha each was merged from. */
  revisions?: Readonly<Record<string, string>>;
}

/** Writes README.md in the shape of mergekit's model card, tagged for the Hub. */
export async function writeModelCard(outDir: string, info: ModelCardInfo): Promise<void> {
  const all = [...new Set([...(info.baseModel ? [info.baseModel] : []), ...info.models])];
  // The Hub validates base_model as repo ids, so local paths and URLs are left out of the metadata.
  const hubIds = [...new Set(all.map((m) => m.replace(/@[^/]*$/, "")).filter(isHubId))];
  const front: Record<string, unknown> = {};
  if (hubIds.length) front.base_model = hubIds;
  front.library_name = "transformers";
  front.tags = ["mergekit", "merge", "mergeloom"];
  const merged = info.models.filter((m) => m !== info.baseModel);
  const fence = "`".repeat(Math.max(3, longestBacktickRun(info.yaml) + 1));
  const lines = [
    "---",
    stringify(front).trimEnd(),
    "---",
    `# ${basename(outDir).replace(/\.mergeloom-tmp-.*$/, "") || "merged model"}`,
    "",
    "This is a merge of pre-trained language models created with mergeloom, a distributed merger with [mergekit](https://github.com/arcee-ai/mergekit)'s numerics.",
    "",
    "## Merge Details",
    "### Merge Method",
    "",
    `This model was merged using the ${info.method} merge method${info.baseModel ? ` using ${link(info.baseModel)} as a base` : ""}.`,
    "",
    "### Models Merged",
    "",
    "The following models were included in the merge:",
    ...(merged.length ? merged : info.models).map((m) => `* ${link(m)}`),
    "",
    ...(info.revisions && Object.keys(info.revisions).length
      ? [
          "### Revisions",
          "",
          "Hub references were pinned to these commits when the merge was planned:",
          "",
          ...Object.entries(info.revisions).map(([r, sha]) => `* ${r}: \`${sha}\``),
          "",
        ]
      : []),
    "### Configuration",
    "",
    "The following YAML configuration was used to produce this model:",
    "",
    `${fence}yaml`,
    info.yaml.replace(/\s+$/, ""),
    fence,
    "",
  ];
  await writeText(join(outDir, "README.md"), lines.join("\n"));
}

function isHubId(ref: string): boolean {
  return /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(ref) && !ref.includes("..");
}

function link(ref: string): string {
  const id = ref.replace(/@[^/]*$/, "");
  return isHubId(id) ? `[${ref}](https://huggingface.co/${id})` : ref;
}

function longestBacktickRun(s: string): number {
  let best = 0;
  for (const m of s.matchAll(/`+/g)) best = Math.max(best, m[0].length);
  return best;
}

async function readJsonObject(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new StorageError(`read ${path}: ${(err as Error).message}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(path, `${basename(path)} is not valid JSON (${(err as Error).message})`, { cause: err });
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) throw new CheckpointError(path, `${basename(path)} is not a JSON object`);
  return doc as Record<string, unknown>;
}

async function writeText(path: string, text: string): Promise<void> {
  try {
    await writeFile(path, text);
  } catch (err) {
    throw new StorageError(`write ${path}: ${fsErrorDetail(err)}`, { cause: err });
  }
}
