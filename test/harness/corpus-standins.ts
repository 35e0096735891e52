/**
 * The real-config corpus (test/configs/corpus) on stand-in checkpoints: writes every stand-in of
 * standins.json (seeded by its position, so each run writes the same bytes) and maps a config's
 * model references to them. Shared by the `--numerics mergekit` corpus parity test and its
 * recorder (scripts/numerics/record-corpus-parity.mjs), which must see identical checkpoints.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseDocument, visit } from "yaml";
import { REPO_ROOT } from "./repo-root.js";
import { writeLoraStandIn, writeStandIn, type StandInArch } from "./stand-in-checkpoints.js";

export const CORPUS_DIR = join(REPO_ROOT, "test", "configs", "corpus");
export const CORPUS_PARITY_DIR = join(REPO_ROOT, "test", "reference", "mergekit-parity", "corpus");
/** The same, recorded on Debian's torch 1.13 (checked with `--numerics mergekit-torch1.13`). */
export const CORPUS_PARITY_TORCH1_DIR = join(REPO_ROOT, "test", "reference", "mergekit-parity", "corpus-torch1.13");

export interface CorpusEntry {
  file: string;
  method: string;
}

type StandIn = { arch: StandInArch; layers: number } | { arch: "lora"; of: StandInArch; layers: number };

export function corpusEntries(): CorpusEntry[] {
  return (JSON.parse(readFileSync(join(CORPUS_DIR, "manifest.json"), "utf8")) as { configs: CorpusEntry[] }).configs;
}

/** Writes every stand-in under `dir`; returns model reference → directory. */
export async function writeCorpusStandIns(dir: string): Promise<Map<string, string>> {
  const standins = JSON.parse(readFileSync(join(CORPUS_DIR, "standins.json"), "utf8")) as Record<string, StandIn>;
  const local = new Map<string, string>();
  let seed = 1;
  for (const [ref, spec] of Object.entries(standins)) {
    const d = join(dir, "models", String(seed));
    if (spec.arch === "lora") await writeLoraStandIn(d, spec, seed);
    else await writeStandIn(d, spec, seed);
    local.set(ref, d);
    seed++;
  }
  return local;
}

/** The config with every model reference (also `a+b` LoRA references) replaced by its stand-in. */
export function mapCorpusModels(text: string, local: ReadonlyMap<string, string>): string {
  const doc = parseDocument(text, { version: "1.1", uniqueKeys: false });
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value !== "string") return;
      const parts = node.value.split("+");
      if (parts.every((p) => local.has(p))) node.value = parts.map((p) => local.get(p)).join("+");
    },
  });
  return doc.toString({ lineWidth: 0 });
}
