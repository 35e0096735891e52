/**
 * Tokenizer merging and LoRA references in the distributed path: tasks carry the vocabulary row
 * maps and the adapter's byte ranges (small, by reference), and worker processes over a real
 * nats-server produce the embedded mode's output bit for bit — object-store delivery included.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type NatsServerHandle } from "../harness/nats-server.js";
import { runCli } from "../harness/run-cli.js";
import { startCoordinator, startWorker, uniquePrefix, natsClusterFixture } from "../harness/cluster.js";
import { writeUnionFixture } from "../harness/tokenizer-fixtures.js";
import { writeLoraAdapter } from "../harness/lora-fixtures.js";

let server: NatsServerHandle;
let dir: string;
const { track } = natsClusterFixture("mergeloom-dist-tok-", (s, d) => ((server = s), (dir = d)));

describe("tokenizer merging and LoRA over NATS", () => {
  test("a union-tokenizer merge with a LoRA-adapted input equals the embedded output bit for bit, with file and object delivery", async () => {
    const fx = await writeUnionFixture(join(dir, "fx"));
    const adapter = await writeLoraAdapter(join(dir, "adapter"));
    // The adapter was made for arith-llama/base, whose tensors the union fixture's base keeps.
    const cfg = join(dir, "merge.yml");
    await writeFile(
      cfg,
      `merge_method: ties
base_model: ${fx.base}
models:
  - {model: ${fx.chat}, parameters: {weight: 0.6, density: 0.5}}
  - {model: ${fx.tool}, parameters: {weight: 0.4, density: 0.7}}
  - {model: "${fx.base}+${adapter.dir}", parameters: {weight: 0.3, density: 0.9}}
tokenizer: {source: union, pad_to_multiple_of: 8}
dtype: float32
out_dtype: bfloat16
`,
    );
    const ref = join(dir, "embedded");
    const r = await runCli(["merge", cfg, "-o", ref, "--random-seed", "3"]);
    assert.equal(r.code, 0, r.stderr);
    const refBytes = await readFile(join(ref, "model.safetensors"));
    for (const output of ["file", "object"]) {
      const prefix = uniquePrefix();
      const w = startWorker(server.url, { name: `w-${output}`, prefix, concurrency: 2 });
      track(w);
      await w.waitFor((s) => s.includes("ready"), 15_000, "worker ready");
      const out = join(dir, `nats-${output}`);
      const c = startCoordinator(server.url, prefix, cfg, out, ["--random-seed", "3", "--output-via", output]);
      track(c);
      assert.equal(await c.exited, 0, c.err);
      assert.ok((await readFile(join(out, "model.safetensors"))).equals(refBytes), `${output} delivery differs from the embedded output`);
      assert.deepEqual(JSON.parse(await readFile(join(out, "tokenizer.json"), "utf8")), JSON.parse(await readFile(join(ref, "tokenizer.json"), "utf8")));
      await w.kill("SIGTERM");
    }
  });
});
