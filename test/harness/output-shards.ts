/** The weight files of a merged output: the index's shards, or mergekit's single `model.safetensors`. */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

export async function outputShardFiles(out: string): Promise<string[]> {
  const index = join(out, "model.safetensors.index.json");
  if (!existsSync(index)) return ["model.safetensors"];
  const idx = JSON.parse(await readFile(index, "utf8")) as { weight_map: Record<string, string> };
  return [...new Set(Object.values(idx.weight_map))];
}
