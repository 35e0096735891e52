/**
 * `--numerics mergekit` as a user runs it: the CLI in embedded mode and over NATS JetStream with
 * two worker processes writes the bytes mergekit wrote (hashes recorded from mergekit's own code),
 * `plan` shows the compute dtype, and bad values fail with one line.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { startNatsServer, type NatsServerHandle } from "../harness/nats-server.js";
import { runCli } from "../harness/run-cli.js";
import { REPO_ROOT } from "../harness/repo-root.js";
import { startCoordinator, startWorker, uniquePrefix, type Proc } from "../harness/cluster.js";
import { TORCH1_MANIFEST, configWithDtype, readExpected, readManifest, tensorHashes, type ParityEntry } from "../harness/mergekit-parity.js";

// breadcrumbs_ties in bf16: torch's sort order at the pruning cuts, sign consensus and bf16 rounding at once.
const ENTRY = readManifest(REPO_ROOT).find((e) => e.name === "breadcrumbs_ties/bfloat16")!;
// karcher in bf16 as mergekit computes it on Debian's torch 1.13: torch 1.13's bf16 dot (naive loop and oneDNN blocks), SLEEF acos/sin/cos.
const KARCHER = readManifest(REPO_ROOT, TORCH1_MANIFEST).find((e) => e.name === "karcher/bfloat16")!;

let server: NatsServerHandle;
let dir: string;
let config: string;
const procs: Proc[] = [];

function assertMergekitBytes(out: string, entry: ParityEntry = ENTRY): void {
  const want = readExpected(REPO_ROOT, entry);
  assert.ok(want, `no recorded hashes at ${entry.expected}`);
  const got = tensorHashes(out);
  const differ = Object.entries(want.tensors)
    .filter(([name, w]) => got.get(name)?.sha256 !== w.sha256)
    .map(([name]) => name);
  assert.equal(got.size, Object.keys(want.tensors).length);
  assert.deepEqual(differ, [], "tensors that differ from mergekit's output");
}

/** Merges `cfg` through a coordinator and two worker processes over NATS; returns the output directory. */
async function mergeOverNats(cfg: string, name: string, numerics: string): Promise<string> {
  const prefix = uniquePrefix();
  const workers = [`${name}-w1`, `${name}-w2`].map((w) => startWorker(server.url, { name: w, prefix, concurrency: 2 }));
  procs.push(...workers);
  await Promise.all(workers.map((w) => w.waitFor((s) => s.includes("ready"), 15_000, "worker ready")));
  const out = join(dir, name);
  const c = startCoordinator(server.url, prefix, cfg, out, ["--numerics", numerics]);
  procs.push(c);
  assert.equal(await c.exited, 0, c.err);
  await Promise.all(workers.map((w) => w.kill("SIGTERM")));
  return out;
}

describe("mergeloom --numerics mergekit from the command line", () => {
  before(async () => {
    server = await startNatsServer({ jetstream: true });
    dir = await mkdtemp(join(tmpdir(), "mergeloom-numerics-cli-"));
    config = join(dir, "config.yml");
    await writeFile(config, configWithDtype(await readFile(join(REPO_ROOT, ENTRY.config), "utf8"), ENTRY.dtype));
  });
  after(async () => {
    await Promise.all(procs.map((p) => (p.child.exitCode === null ? p.kill("SIGKILL") : undefined)));
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test("merge in one process writes mergekit's bytes", async () => {
    const out = join(dir, "embedded");
    const r = await runCli(["merge", config, "-o", out, "--numerics", "mergekit", "--threads", "2"]);
    assert.equal(r.code, 0, r.stderr);
    assertMergekitBytes(out);
  });

  test("two worker processes over NATS write mergekit's bytes (the task message carries the compute dtype)", async () => {
    assertMergekitBytes(await mergeOverNats(config, "nats", "mergekit"));
  });

  test("plan --numerics mergekit shows every tensor's compute dtype", async () => {
    const r = await runCli(["plan", config, "--numerics", "mergekit", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const plan = JSON.parse(r.stdout) as { numerics: string; tensors: Array<{ computeDtype?: string }> };
    assert.equal(plan.numerics, "mergekit");
    assert.ok(plan.tensors.length > 0 && plan.tensors.every((t) => t.computeDtype === "BF16"));
  });

  test("an unknown --numerics value and a method mergekit mode cannot reproduce fail with one line", async () => {
    const bad = await runCli(["merge", config, "-o", join(dir, "x"), "--numerics", "torch"]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr.trim(), /^mergeloom: .*--numerics: 'torch' is not one of default, mergekit, mergekit-torch1.13$/);
    assert.equal(bad.stderr.trim().split("\n").length, 1);
    const own = join(dir, "consensus.yml");
    await writeFile(
      own,
      (await readFile(config, "utf8"))
        .replace("merge_method: breadcrumbs_ties", "merge_method: consensus_ta")
        .replace(/, density: [0-9.]+, gamma: [0-9.]+/g, ""),
    );
    const r = await runCli(["plan", own, "--numerics", "mergekit"]);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr.trim(),
      /^mergeloom: .*'consensus_ta' is mergeloom's own method, so --numerics mergekit has nothing to reproduce; use --numerics default$/,
    );
  });

  test("karcher in bf16 (torch 2.x's AMX dot over 4096 elements), karcher in fp32, multislerp in fp32 and sce with select_topk < 1 are planned in the torch 2.x mode", async () => {
    const base = (await readFile(config, "utf8")).replace(/, density: [0-9.]+, gamma: [0-9.]+/g, "");
    const karcher = join(dir, "karcher.yml");
    await writeFile(karcher, base.replace("merge_method: breadcrumbs_ties", "merge_method: karcher"));
    const k = await runCli(["plan", karcher, "--numerics", "mergekit"]);
    assert.equal(k.code, 0, k.stderr);
    assert.equal((await runCli(["plan", karcher, "--numerics", "mergekit-torch1.13"])).code, 0, "karcher in bf16 is reproduced for torch 1.13");
    await writeFile(karcher, base.replace("merge_method: breadcrumbs_ties", "merge_method: karcher").replace("dtype: bfloat16", "dtype: float32"));
    assert.equal((await runCli(["plan", karcher, "--numerics", "mergekit"])).code, 0, "karcher in fp32 is reproduced (MKL's sdot, acos, sin, cos)");
    const ms = join(dir, "multislerp.yml");
    await writeFile(ms, base.replace("merge_method: breadcrumbs_ties", "merge_method: multislerp").replace("dtype: bfloat16", "dtype: float32"));
    assert.equal((await runCli(["plan", ms, "--numerics", "mergekit"])).code, 0, "multislerp in fp32 is reproduced (MKL's cos, sin)");
    const sce = join(dir, "sce.yml");
    await writeFile(sce, base.replace("merge_method: breadcrumbs_ties", "merge_method: sce") + "parameters:\n  select_topk: 0.7\n");
    assert.equal((await runCli(["plan", sce, "--numerics", "mergekit"])).code, 0, "sce with select_topk < 1 is reproduced");
  });

  test("--numerics mergekit-torch1.13: karcher over NATS with two workers writes the bytes mergekit wrote on Debian's torch 1.13", async () => {
    const cfg = join(dir, "karcher-torch1.yml");
    await writeFile(cfg, configWithDtype(await readFile(join(REPO_ROOT, KARCHER.config), "utf8"), KARCHER.dtype));
    const plan = await runCli(["plan", cfg, "--numerics", "mergekit-torch1.13", "--json"]);
    assert.equal(plan.code, 0, plan.stderr);
    const p = JSON.parse(plan.stdout) as { numerics: string; tensors: Array<{ computeDtype?: string; computeTorch?: string }> };
    assert.equal(p.numerics, "mergekit-torch1.13");
    assert.ok(p.tensors.every((t) => t.computeDtype === "BF16" && t.computeTorch === "1.13"));
    assertMergekitBytes(await mergeOverNats(cfg, "karcher-nats", "mergekit-torch1.13"), KARCHER);
    const f16 = join(dir, "karcher-f16.yml");
    await writeFile(f16, configWithDtype(await readFile(join(REPO_ROOT, KARCHER.config), "utf8"), "float16"));
    const r = await runCli(["plan", f16, "--numerics", "mergekit-torch1.13"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr.trim(), /^mergeloom: config dtype: mergekit cannot run karcher in float16 on torch 1.13 \(torch 1.13 has no float16 dot on CPU\)/);
    assert.equal(r.stderr.trim().split("\n").length, 1);
  });
});
