// `mergeloom merge --numerics mergekit` on the real-config corpus (test/configs/corpus, stand-in
// checkpoints with the real tensor names) against mergekit's own outputs: for every config whose
// recording exists in test/reference/mergekit-parity/corpus (scripts/numerics/record-corpus-parity.mjs
// runs mergekit; random methods are not recorded), every output tensor's sha256 prefix must match.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, runMergeJob } from "@mergeloom/engine/job";
import { LocalDispatcher } from "@mergeloom/engine/job";
import { CORPUS_DIR, CORPUS_PARITY_DIR, CORPUS_PARITY_TORCH1_DIR, corpusEntries, mapCorpusModels, writeCorpusStandIns } from "../harness/corpus-standins.js";
import { tensorHashes } from "../harness/mergekit-parity.js";

// torch 2.x recordings (checked with --numerics mergekit) and Debian torch 1.13 ones (mergekit-torch1.13)
const SETS = [
  { dir: CORPUS_PARITY_DIR, numerics: "mergekit", min: 10 },
  { dir: CORPUS_PARITY_TORCH1_DIR, numerics: "mergekit-torch1.13", min: 20 },
] as const;
for (const set of SETS) describeSet(set);

function describeSet({ dir: PARITY, numerics, min }: (typeof SETS)[number]): void {
  const recorded = corpusEntries().filter((e) => existsSync(join(PARITY, e.file.replace(/\.yml$/, ".json"))));

  describe(`--numerics ${numerics} reproduces mergekit on the real-config corpus`, () => {
    let dir: string;
    let local: Map<string, string>;
    let dispatcher: LocalDispatcher;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "mergeloom-corpus-parity-"));
      local = await writeCorpusStandIns(dir);
      dispatcher = new LocalDispatcher({ threads: 0 });
    });
    after(async () => {
      await dispatcher.close();
      await rm(dir, { recursive: true, force: true });
    });

    test("recordings exist for the corpus's deterministic methods", () => {
      assert.ok(recorded.length >= min, `only ${recorded.length} corpus configs have mergekit recordings`);
    });

    for (const e of recorded) {
      test(`${e.file} (${e.method}): every tensor equals mergekit's`, async () => {
        const want = JSON.parse(readFileSync(join(PARITY, e.file.replace(/\.yml$/, ".json")), "utf8")) as { tensors: Record<string, string> };
        const cfgFile = join(dir, e.file);
        await writeFile(cfgFile, mapCorpusModels(readFileSync(join(CORPUS_DIR, e.file), "utf8"), local));
        const out = join(dir, `${e.file}.out`);
        await runMergeJob(await loadConfig(cfgFile), dispatcher, { out, seed: 0, maxShardBytes: 5e9, overwrite: true, numerics });
        const got = tensorHashes(out);
        assert.deepEqual([...got.keys()].sort(), Object.keys(want.tensors).sort(), `${e.file}: tensor names`);
        const differ = Object.entries(want.tensors).filter(([name, w]) => {
          const g = got.get(name)!;
          return `${g.dtype}:${g.sha256.slice(0, 16)}` !== w;
        });
        assert.deepEqual(
          differ.map(([n]) => n),
          [],
          `${e.file}: ${differ.length} of ${got.size} tensors differ from mergekit's`,
        );
        await rm(out, { recursive: true, force: true });
      });
    }
  });
}
