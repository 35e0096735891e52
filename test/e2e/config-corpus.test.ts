/**
 * Real published mergekit configs run unchanged: every config in test/configs/corpus (saved
 * verbatim, sources in manifest.json) is planned and merged against tiny stand-in checkpoints with
 * the real tensor names of its architecture (model ids mapped to stand-ins by standins.json), and
 * the output must be a sound HF model directory: shards and index consistent, config.json's layer
 * count as the config's slices say, the tensor set the architecture has, no NaN or inf.
 *
 * Set CORPUS_TABLE=FILE to write the README's results table.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDocument } from "yaml";
import { LocalDispatcher } from "@mergeloom/engine/job";
import { parseMergeConfig } from "@mergeloom/engine/config";
import { runMergeJob } from "@mergeloom/engine/job";
import { createDefaultRegistry } from "@mergeloom/engine/methods";
import { parseHeaderLength, parseSafetensorsHeader } from "@mergeloom/engine/tensor";
import { readCheckpointF32 } from "@mergeloom/engine/eval";
import { standInTensorNames, writeStandIn, type StandInArch } from "../harness/stand-in-checkpoints.js";
import { CORPUS_DIR as CORPUS, mapCorpusModels, writeCorpusStandIns } from "../harness/corpus-standins.js";

interface Entry {
  file: string;
  source: string;
  method: string;
  arch: StandInArch;
  layers: number;
  /** Fragments of the warnings the config must produce (what mergekit ignores). */
  warns?: string[];
  verbatim?: boolean;
}
const manifest = JSON.parse(readFileSync(join(CORPUS, "manifest.json"), "utf8")) as { configs: Entry[] };
const standins = JSON.parse(readFileSync(join(CORPUS, "standins.json"), "utf8")) as Record<string, { layers: number }>;

let dir: string;
let local: ReadonlyMap<string, string> = new Map();
const rows: string[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-corpus-"));
  local = await writeCorpusStandIns(dir);
});

after(async () => {
  if (process.env.CORPUS_TABLE) {
    await writeFile(process.env.CORPUS_TABLE, ["| config | method | arch (stand-in layers) | result |", "|---|---|---|---|", ...rows].join("\n") + "\n");
  }
  await rm(dir, { recursive: true, force: true });
});

/** Output layers the config asks for, read from the YAML itself (not from the planner). */
function expectedLayers(text: string, e: Entry): number {
  const cfg = parseDocument(text, { version: "1.1", uniqueKeys: false }).toJS() as { slices?: { sources: { layer_range: [number, number] }[] }[] };
  if (!cfg.slices) return e.layers;
  return cfg.slices.reduce((n, s) => n + s.sources[0].layer_range[1] - s.sources[0].layer_range[0], 0);
}

/** Checks the index (if any) against the shard headers and returns every tensor name. */
async function checkShards(out: string): Promise<string[]> {
  const files = await readdir(out);
  const shards = files.filter((f) => f.endsWith(".safetensors"));
  const names: string[] = [];
  let payload = 0;
  const byFile = new Map<string, string[]>();
  for (const f of shards) {
    const buf = await readFile(join(out, f));
    const n = parseHeaderLength(f, buf, buf.byteLength);
    const h = parseSafetensorsHeader(f, buf.subarray(8, 8 + n), buf.byteLength);
    const here = [...h.tensors.keys()];
    byFile.set(f, here);
    names.push(...here);
    for (const t of h.tensors.values()) payload += t.byteLength;
  }
  if (files.includes("model.safetensors.index.json")) {
    const index = JSON.parse(await readFile(join(out, "model.safetensors.index.json"), "utf8")) as {
      metadata: { total_size: number };
      weight_map: Record<string, string>;
    };
    assert.equal(index.metadata.total_size, payload, "index total_size is the tensor payload");
    assert.deepEqual(Object.keys(index.weight_map).sort(), [...names].sort(), "index lists exactly the tensors in the shards");
    for (const [name, f] of Object.entries(index.weight_map)) assert.ok(byFile.get(f)?.includes(name), `${name} is not in ${f}`);
    assert.ok(shards.length >= 2);
  } else {
    assert.deepEqual(shards, ["model.safetensors"], "one shard without an index is model.safetensors");
  }
  return names;
}

describe("the corpus of real mergekit configs", () => {
  test("holds at least 40 configs, each with its source, covering the stand-in architectures", () => {
    assert.ok(manifest.configs.length >= 40, `${manifest.configs.length} configs`);
    for (const e of manifest.configs) {
      assert.ok(e.source.length > 10, `${e.file} has no source`);
      assert.ok(existsSync(join(CORPUS, e.file)), `${e.file} missing`);
    }
    const archs = new Set(manifest.configs.map((e) => e.arch));
    for (const a of ["llama", "mistral", "qwen2", "gemma2"]) assert.ok(archs.has(a as StandInArch), `no ${a} config`);
    assert.ok(
      Object.values(standins).some((s) => s.layers >= 80),
      "a sharded 80-layer stand-in",
    );
  });

  test("the Phi-3 stand-in (fused qkv_proj and gate_up_proj) merges like the others", async () => {
    const a = join(dir, "phi3-a");
    const b = join(dir, "phi3-b");
    await writeStandIn(a, { arch: "phi3", layers: 4 }, 1001);
    await writeStandIn(b, { arch: "phi3", layers: 4 }, 1002);
    const out = join(dir, "phi3-out");
    const cfg = parseMergeConfig(
      `models:\n  - model: ${a}\n  - model: ${b}\nmerge_method: slerp\nbase_model: ${a}\nparameters: {t: 0.5}\ndtype: bfloat16\n`,
      "phi3.yml",
      createDefaultRegistry(),
    );
    const dispatcher = new LocalDispatcher({ threads: 0 });
    await runMergeJob(cfg, dispatcher, { out, seed: 0, maxShardBytes: 5e9 }).finally(() => dispatcher.close());
    assert.deepEqual((await checkShards(out)).sort(), standInTensorNames("phi3", 4).sort());
    assert.ok((await checkShards(out)).includes("model.layers.3.self_attn.qkv_proj.weight"));
  });

  for (const e of manifest.configs) {
    test(`${e.file} (${e.method}, ${e.arch}) plans and merges to a sound HF model`, async () => {
      const text = await readFile(join(CORPUS, e.file), "utf8");
      const work = join(dir, "runs", e.file.replace(/\.yml$/, ""));
      await mkdir(work, { recursive: true });
      const cfgFile = join(work, "config.yml");
      await writeFile(cfgFile, mapCorpusModels(text, local));
      const out = join(work, "out");
      const warnings: string[] = [];
      let merged: { error?: Error } = {};
      const dispatcher = new LocalDispatcher({ threads: 0 });
      try {
        const cfg = parseMergeConfig(await readFile(cfgFile, "utf8"), cfgFile, createDefaultRegistry());
        warnings.push(...cfg.warnings);
        await runMergeJob(cfg, dispatcher, { out, seed: 0, maxShardBytes: 5e9 });
      } catch (err) {
        merged = { error: err as Error };
      } finally {
        await dispatcher.close();
      }
      if (merged.error) assert.fail(`${e.file}: ${merged.error.message}`);
      for (const w of e.warns ?? [])
        assert.ok(
          warnings.some((x) => x.includes(w)),
          `expected a warning with "${w}", got:\n${warnings.join("\n")}`,
        );
      const layers = expectedLayers(text, e);
      const names = await checkShards(out);
      assert.deepEqual([...names].sort(), standInTensorNames(e.arch, layers).sort(), "the tensor set of the architecture at the new depth");
      const config = JSON.parse(await readFile(join(out, "config.json"), "utf8")) as { num_hidden_layers: number };
      assert.equal(config.num_hidden_layers, layers);
      for (const [name, t] of readCheckpointF32(out)) {
        for (const v of t.data) if (!Number.isFinite(v)) assert.fail(`${name} holds ${v}`);
      }
      const notes = warnings.length ? `merged, ${warnings.length} warning${warnings.length > 1 ? "s" : ""}` : "merged";
      rows.push(`| \`${e.file}\` | ${e.method} | ${e.arch} (${e.layers}) | ${notes}, ${layers} layers |`);
    });
  }
});
