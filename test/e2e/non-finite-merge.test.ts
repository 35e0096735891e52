/**
 * `weight: 1e308` on two models gives an all-NaN model; the merge must fail naming the tensor and
 * method, exit non-zero and leave no output — locally and on a cluster (issue 9 item 5). An input
 * that already holds ±inf keeps mergekit's result with one warning for that tensor.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FIXTURES } from "../harness/repo-root.js";
import { runCli } from "../harness/run-cli.js";
import { startCoordinator, startWorker, type Proc } from "../harness/cluster.js";
import { startNatsServer, type NatsServerHandle } from "../harness/nats-server.js";
import { rewriteCheckpoint } from "../harness/rewrite-checkpoint.js";

const F = (m: string) => join(FIXTURES, m);
let dir: string;
let server: NatsServerHandle | undefined;
const procs: Proc[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-nonfinite-e2e-"));
});
after(async () => {
  for (const p of procs) if (p.child.exitCode === null) await p.kill();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

const overflow = `merge_method: linear\nmodels:\n  - model: ${F("base")}\n    parameters: { weight: 1e308 }\n  - model: ${F("expert-add")}\n    parameters: { weight: 1e308 }\n`;

async function assertNoOutput(out: string): Promise<void> {
  assert.equal(existsSync(out), false, "no output directory");
  const name = out.split("/").pop()!;
  assert.deepEqual(
    (await readdir(dir)).filter((f) => f.startsWith(name)),
    [],
    "no temporary directory",
  );
}

describe("a merge that invents NaN/±inf fails", () => {
  test("locally: one line naming tensor and method, non-zero exit, no output", async () => {
    const cfg = join(dir, "overflow.yml");
    await writeFile(cfg, overflow);
    const out = join(dir, "out-local");
    const r = await runCli(["merge", cfg, "-o", out, "--threads", "1", "--json"]);
    assert.notEqual(r.code, 0);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^mergeloom: .*merge [\w.]+ with linear: the merged tensor holds NaN or ±inf although no input does/);
    await assertNoOutput(out);
  });

  test("on a cluster: the worker reports the failure and the job fails", async () => {
    server = await startNatsServer({ jetstream: true });
    const prefix = `nf${Date.now().toString(36)}`;
    const cfg = join(dir, "overflow-dist.yml");
    await writeFile(cfg, overflow);
    const out = join(dir, "out-dist");
    const w = startWorker(server.url, { name: "w1", prefix, maxDeliver: 2 });
    procs.push(w);
    const c = startCoordinator(server.url, prefix, cfg, out);
    procs.push(c);
    const code = await Promise.race([c.exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 60_000))]);
    assert.notEqual(code, "timeout", `coordinator did not finish:\n${c.out}\n${c.err}`);
    assert.notEqual(code, 0);
    const lines = c.err.trim().split("\n");
    assert.equal(lines.length, 1, c.err);
    assert.match(lines[0], /job .* failed: .*with linear: the merged tensor holds NaN or ±inf although no input does/);
    await assertNoOutput(out);
    assert.equal(w.child.exitCode, null, "the worker keeps running");
  });
});

describe("an input that already holds inf", () => {
  test("merges as mergekit does and warns once for that tensor", async () => {
    const m = await rewriteCheckpoint(F("expert-add"), join(dir, "inf-model"), (ts) =>
      ts.map((t) => {
        if (t.name !== "model.norm.weight") return t;
        const data = Buffer.from(t.data);
        data.writeUInt16LE(0x7f80, 6); // element 3 = +inf (bf16)
        return { ...t, data };
      }),
    );
    const cfg = join(dir, "inf.yml");
    await writeFile(
      cfg,
      `merge_method: linear\nmodels:\n  - model: ${F("base")}\n    parameters: { weight: 1 }\n  - model: ${m}\n    parameters: { weight: 1 }\n`,
    );
    const r = await runCli(["merge", cfg, "-o", join(dir, "out-inf"), "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const warnings = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; message?: string })
      .filter((e) => e.type === "warning");
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.match(warnings[0].message!, /merge model\.norm\.weight: input '.*inf-model' .* holds NaN or ±inf/);
  });
});
