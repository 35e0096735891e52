/**
 * Issue 9 item 11 with real processes and real signals: SIGINT, SIGTERM and SIGHUP stop a local
 * merge the same way (temporary output and lock removed, exit status 128 + signal number), and a
 * run killed with SIGKILL leaves a temp dir whose marker names its dead owner, which the next
 * merge into the same parent removes — while temp dirs of live owners and other hosts stay.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { constants, hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { Proc } from "../harness/cluster.js";
import { FIXTURES } from "../harness/repo-root.js";
import { runCli } from "../harness/run-cli.js";
import { startSlowServer } from "../harness/slow-http-server.js";

let root: string;
let server: Awaited<ReturnType<typeof startSlowServer>>;
let stalledCfg: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), "mergeloom-signals-"));
  await cp(join(FIXTURES, "base"), join(root, "srv", "m"), { recursive: true });
  // Headers and config are served; tensor data (from the first data byte on) never arrives.
  const file = readFileSync(join(root, "srv", "m", "model.safetensors"));
  const dataStart = 8 + Number(file.readBigUInt64LE(0));
  server = await startSlowServer(join(root, "srv"), { mode: "stall", slowFrom: dataStart });
  stalledCfg = join(root, "stalled.yml");
  await writeFile(stalledCfg, `merge_method: linear\nmodels:\n  - model: ${server.url}/m/\n    parameters: { weight: 1.0 }\n`);
});
after(async () => {
  await server.close();
  await rm(root, { recursive: true, force: true });
});

const tempsOf = (dir: string, name: string) => readdirSync(dir).filter((f) => f.startsWith(`${name}.mergeloom-tmp-`));

/** Starts a merge that hangs on tensor data and resolves once its temporary output (with marker) exists. */
async function startStalledMerge(dir: string, name: string): Promise<{ proc: Proc; temp: string }> {
  const proc = new Proc(["merge", stalledCfg, "-o", join(dir, name), "--http-timeout", "600", "--threads", "1"]);
  const deadline = Date.now() + 20_000;
  for (;;) {
    const t = tempsOf(dir, name)[0];
    if (t && existsSync(join(dir, t, ".mergeloom-output"))) return { proc, temp: join(dir, t) };
    if (Date.now() > deadline) throw new Error(`no temporary output appeared:\n${proc.err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("signals during a local merge", () => {
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    test(`${sig} removes the temporary output and the lock and exits with 128 + ${constants.signals[sig]}`, async () => {
      const dir = join(root, sig);
      await mkdir(dir);
      const { proc, temp } = await startStalledMerge(dir, "out");
      const marker = JSON.parse(readFileSync(join(temp, ".mergeloom-output"), "utf8")) as { pid: number; host: string };
      assert.equal(marker.pid, proc.child.pid);
      assert.equal(marker.host, hostname());
      assert.ok(existsSync(join(dir, "out.mergeloom-lock")));
      const code = await proc.kill(sig);
      assert.equal(code, 128 + constants.signals[sig], proc.err);
      assert.match(proc.err.trim().split("\n").pop()!, new RegExp(`^mergeloom: merge ${dir}/out: interrupted by ${sig}; the partial output was removed$`));
      assert.deepEqual(readdirSync(dir), [], "no temp dir, no lock, no output");
    });
  }
});

describe("stale temporary outputs", () => {
  test("a SIGKILLed run's temp dir is removed by the next merge to that parent; live owners' and other hosts' temp dirs stay", async () => {
    const dir = join(root, "stale");
    await mkdir(dir);
    const { proc, temp } = await startStalledMerge(dir, "out");
    await proc.kill("SIGKILL");
    assert.ok(existsSync(temp), "SIGKILL leaves the temp dir behind");
    const live = spawn("sleep", ["60"], { stdio: "ignore" });
    try {
      const liveTemp = join(dir, "out.mergeloom-tmp-live00");
      const remoteTemp = join(dir, "out.mergeloom-tmp-remote");
      for (const [t, owner] of [
        [liveTemp, { pid: live.pid, host: hostname() }],
        [remoteTemp, { pid: proc.child.pid, host: "other-host" }],
      ] as const) {
        await mkdir(t);
        await writeFile(join(t, ".mergeloom-output"), JSON.stringify({ tool: "mergeloom", jobId: "x", ...owner, createdAt: Date.now() }));
      }
      const cfg = join(root, "local.yml");
      await writeFile(cfg, `merge_method: linear\nmodels:\n  - model: ${join(FIXTURES, "expert-add")}\n    parameters: { weight: 1.0 }\n`);
      const r = await runCli(["merge", cfg, "-o", join(dir, "out")]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(existsSync(temp), false, "the dead owner's temp dir is gone");
      assert.deepEqual(readdirSync(dir).sort(), ["out", "out.mergeloom-tmp-live00", "out.mergeloom-tmp-remote"]);
    } finally {
      live.kill("SIGKILL");
    }
  });
});
