// `mergeloom merge --numerics mergekit` against mergekit's own outputs: every entry of the parity
// manifest (test/reference/mergekit-parity/manifest.json: arith-llama configs × float32, bfloat16,
// float16) is merged through the real engine and every output tensor's sha256 must equal the one
// recorded from mergekit (scripts/numerics/record-mergekit-parity.py, torch 2.x, one thread):
// byte-identical tensors, 0 ulps. Entries listed in KNOWN_DIFFERENT are documented exceptions
// (README "Differences from mergekit") and must keep differing only in the listed tensors' count.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, runMergeJob } from "@mergeloom/engine/job";
import { LocalDispatcher } from "@mergeloom/engine/job";
import { REPO_ROOT } from "../harness/repo-root.js";
import { DEFAULT_MANIFEST, TORCH1_MANIFEST, configWithDtype, readExpected, readManifestFile, tensorHashes } from "../harness/mergekit-parity.js";

const root = REPO_ROOT;

/** Entries that are not byte-identical, with why (none at present). */
export const KNOWN_DIFFERENT: Record<string, string> = {};

// The torch 2.x manifest (or MERGELOOM_PARITY_MANIFEST) and the torch 1.13 one, each in its mode.
const manifests = process.env.MERGELOOM_PARITY_MANIFEST ? [process.env.MERGELOOM_PARITY_MANIFEST] : [DEFAULT_MANIFEST, TORCH1_MANIFEST];

for (const manifest of manifests) describeManifest(manifest);

function describeManifest(manifest: string): void {
  const { entries, numerics } = readManifestFile(root, manifest);
  const torch1 = numerics === "mergekit-torch1.13";
  describe(`--numerics ${numerics} reproduces mergekit's outputs byte for byte (${manifest})`, () => {
    let work: string;
    let dispatcher: LocalDispatcher;
    const cwd = process.cwd();

    before(async () => {
      process.chdir(root); // manifest configs name models relative to the repository root
      work = await mkdtemp(join(tmpdir(), "mergeloom-parity-"));
      dispatcher = new LocalDispatcher({ threads: 0 });
    });
    after(async () => {
      await dispatcher.close();
      await rm(work, { recursive: true, force: true });
      process.chdir(cwd);
    });

    test("the manifest covers every deterministic fixture config in float32, bfloat16 and float16", () => {
      assert.ok(entries.length >= (torch1 ? 55 : 42), `only ${entries.length} manifest entries`);
      for (const dt of ["float32", "bfloat16", "float16"])
        assert.ok(
          entries.some((e) => e.dtype === dt),
          `no ${dt} entry`,
        );
      const missing = entries.filter((e) => !readExpected(root, e)).map((e) => e.name);
      assert.deepEqual(missing, [], "entries without recorded mergekit hashes (run scripts/numerics/record-mergekit-parity.py)");
    });

    for (const e of entries) {
      test(`${e.name}: every tensor equals mergekit's`, async () => {
        const want = readExpected(root, e);
        assert.ok(want, `no recorded hashes at ${e.expected}; run scripts/numerics/record-mergekit-parity.py --only ${e.name}`);
        const dir = join(work, e.name.replace(/\//g, "_"));
        const cfgFile = `${dir}.yml`;
        await writeFile(cfgFile, configWithDtype(readFileSync(join(root, e.config), "utf8"), e.dtype));
        const config = await loadConfig(cfgFile);
        await runMergeJob(config, dispatcher, { out: dir, seed: 0, maxShardBytes: 1 << 30, overwrite: true, numerics });
        const got = tensorHashes(dir);
        assert.deepEqual([...got.keys()].sort(), Object.keys(want.tensors).sort(), `${e.name}: tensor names`);
        const differ: string[] = [];
        for (const [name, w] of Object.entries(want.tensors)) {
          const g = got.get(name)!;
          assert.equal(g.dtype, w.dtype, `${e.name}: dtype of ${name}`);
          assert.deepEqual(g.shape, w.shape, `${e.name}: shape of ${name}`);
          if (g.sha256 !== w.sha256) differ.push(name);
        }
        if (KNOWN_DIFFERENT[e.name]) {
          console.log(`${e.name}: ${differ.length}/${got.size} tensors differ (known: ${KNOWN_DIFFERENT[e.name]})`);
          return;
        }
        assert.deepEqual(differ, [], `${e.name}: ${differ.length} of ${got.size} tensors differ from mergekit's`);
      });
    }
  });
}
