/**
 * Hub references end to end through the built CLI, against a Hub-compatible server on 127.0.0.1
 * (test/harness/hub-server.ts; HF_ENDPOINT points at it): plans read headers only, merges from
 * the Hub equal local merges bit for bit, revisions are pinned, the HF cache is shared with
 * huggingface_hub, and auth, missing things and flaky networks behave as documented.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readlinkSync } from "node:fs";
import { lstat, mkdtemp, readdir, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { FIXTURES } from "../harness/repo-root.js";
import { runCli, type CliResult } from "../harness/run-cli.js";
import { startTestHub, type TestHub } from "../harness/hub-server.js";
import { venvPython } from "../harness/python-venv.js";
import { writeLoraAdapter } from "../harness/lora-fixtures.js";

const F = (m: string) => join(FIXTURES, m);
const TOKEN = "hf_testTOKENs3cr3t0123456789";
let dir: string;
let hub: TestHub;
const shas: Record<string, string> = {};
let localRef: Buffer;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-hub-"));
  hub = await startTestHub();
  for (const m of ["base", "expert-add", "expert-sub", "expert-mul"]) shas[m] = await hub.addCommit(`arith/${m}`, F(m), { tags: ["v1"] });
  shas.gated = await hub.addCommit("gated/base", F("base"));
  hub.gate("gated/base", TOKEN);
  const r = await merge(await config("local", LOCAL), "local");
  assert.equal(r.code, 0, r.stderr);
  localRef = await tensorsOf("local");
});
after(async () => {
  await hub.close();
  await rm(dir, { recursive: true, force: true });
});

let runs = 0;
/** A fresh range cache per run, so every run's tensor reads cross the network (and meet its faults). */
function env(extra: Record<string, string> = {}): Record<string, string> {
  const ranges = join(dir, `ranges-${runs++}`);
  return {
    HF_ENDPOINT: hub.url,
    HF_HUB_CACHE: join(dir, "cache-default"),
    HF_TOKEN: "",
    HF_HOME: join(dir, "hf-home"),
    MERGELOOM_HUB_RETRY_DELAY_MS: "5",
    MERGELOOM_RANGE_CACHE_DIR: ranges,
    ...extra,
  };
}

async function config(name: string, refs: { base: string; add: string; sub: string }): Promise<string> {
  const p = join(dir, `${name}.yml`);
  const q = JSON.stringify;
  await writeFile(
    p,
    `merge_method: ties\nbase_model: ${q(refs.base)}\nmodels:\n  - model: ${q(refs.add)}\n    parameters: { weight: 1.0, density: 0.5 }\n  - model: ${q(refs.sub)}\n    parameters: { weight: 0.8, density: 0.7 }\ndtype: float32\nout_dtype: bfloat16\n`,
  );
  return p;
}

const LOCAL = { base: F("base"), add: F("expert-add"), sub: F("expert-sub") };
const HUB = { base: "arith/base", add: "arith/expert-add", sub: "arith/expert-sub" };

async function merge(cfg: string, out: string, e: Record<string, string> = env(), extra: string[] = []): Promise<CliResult> {
  return runCli(["merge", cfg, "-o", join(dir, out), "--threads", "1", ...extra], { env: e });
}

async function tensorsOf(out: string): Promise<Buffer> {
  const files = (await readdir(join(dir, out))).filter((f) => f.endsWith(".safetensors")).sort();
  return Buffer.concat(await Promise.all(files.map((f) => readFile(join(dir, out, f)))));
}

/** The token must never be printed, whatever happened. */
function assertNoToken(...rs: CliResult[]): void {
  for (const r of rs) assert.ok(!(r.stdout + r.stderr).includes(TOKEN), "the token appears in the output");
}

describe("Hub references", () => {
  test("plan of a Hub config reads only headers (0 tensor bytes) and equals the local plan", async () => {
    hub.resetCounters();
    const r = await runCli(["plan", await config("plan-hub", HUB), "--json"], { env: env() });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(hub.counters.tensorBytesServed, 0, "plan read tensor bytes");
    assert.ok(hub.counters.bytesServed > 0);
    const l = await runCli(["plan", await config("plan-local", LOCAL), "--json"]);
    const strip = (s: string) => {
      const p = JSON.parse(s) as { tensors: Array<{ inputs: Array<{ model: string }> }>; pins?: unknown };
      for (const t of p.tensors) for (const i of t.inputs) i.model = "";
      delete p.pins;
      return p;
    };
    assert.deepEqual(strip(r.stdout), strip(l.stdout));
    assert.deepEqual(JSON.parse(r.stdout).pins, { "arith/base": shas.base, "arith/expert-add": shas["expert-add"], "arith/expert-sub": shas["expert-sub"] });
  });

  test("a merge from the Hub equals the local merge bit for bit, through a 429 on every tenth request", async () => {
    hub.resetCounters();
    hub.faults.throttleEvery = 10;
    try {
      const r = await merge(await config("hub", HUB), "hub");
      assert.equal(r.code, 0, r.stderr);
      assert.ok(hub.counters.throttled > 0, "the server throttled");
    } finally {
      hub.faults.throttleEvery = 0;
    }
    assert.ok((await tensorsOf("hub")).equals(localRef), "Hub merge differs from the local merge");
    assert.equal(await readFile(join(dir, "hub", "config.json"), "utf8"), await readFile(join(dir, "local", "config.json"), "utf8"));
    assert.equal(await readFile(join(dir, "hub", "vocab.json"), "utf8"), await readFile(F("base/vocab.json"), "utf8"), "tokenizer files come from the base");
    const card = await readFile(join(dir, "hub", "README.md"), "utf8");
    assert.ok(card.includes(`arith/expert-sub: \`${shas["expert-sub"]}\``), "the model card pins the commit");
  });

  test("revisions (@tag, @commit, and the long form's revision) resolve to the same bytes", async () => {
    const p = join(dir, "revs.yml");
    await writeFile(
      p,
      `merge_method: ties\nbase_model: arith/base@v1\nmodels:\n  - model: { model: { path: arith/expert-add, revision: v1 } }\n    parameters: { weight: 1.0, density: 0.5 }\n  - model: arith/expert-sub@${shas["expert-sub"]}\n    parameters: { weight: 0.8, density: 0.7 }\ndtype: float32\nout_dtype: bfloat16\n`,
    );
    const r = await merge(p, "revs");
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await tensorsOf("revs")).equals(localRef));
  });

  test("a branch moved while the job runs does not change the output (the commit is pinned at plan time)", async () => {
    const moving = await hub.addCommit("arith/moving", F("expert-add"));
    const other = await hub.addCommit("arith/moving", F("expert-mul"), { branch: "other" });
    hub.setRef("arith/moving", "main", moving);
    const cfg = await config("moving", { ...HUB, add: "arith/moving" });
    const { Proc } = await import("../harness/cluster.js");
    // Every task waits 300 ms, so the branch moves after planning and before most reads.
    const c = new Proc(["merge", cfg, "-o", join(dir, "moving"), "--threads", "1", "--json", "--task-size", "1"], {
      ...env(),
      MERGELOOM_FAULT_TASK_DELAY_MS: "300",
    });
    await c.waitFor((s) => s.includes('"type":"plan"'), 30_000, "the plan event");
    hub.setRef("arith/moving", "main", other);
    assert.equal(await c.exited, 0, c.err);
    assert.ok((await tensorsOf("moving")).equals(localRef), "output changed with the branch");
    // The move was real: planning now gives expert-mul's commit.
    const r = await runCli(["plan", cfg, "--json"], { env: env() });
    assert.equal(JSON.parse(r.stdout).pins["arith/moving"], other);
  });
  test("a Hub LoRA adapter (model+org/adapter@rev) is pinned and merges like the same adapter on disk", async () => {
    await writeLoraAdapter(join(dir, "adapter-src"));
    const sha = await hub.addCommit("arith/lora", join(dir, "adapter-src"), { tags: ["v1"] });
    const cfgOf = async (name: string, ref: string) => {
      const p = join(dir, `${name}.yml`);
      await writeFile(p, `merge_method: linear\nmodels:\n  - model: ${JSON.stringify(ref)}\n    parameters: { weight: 1.0 }\ndtype: float32\n`);
      return p;
    };
    const local = await merge(await cfgOf("lora-local", `${F("base")}+${join(dir, "adapter-src")}`), "lora-local");
    assert.equal(local.code, 0, local.stderr);
    const remote = await merge(await cfgOf("lora-hub", "arith/base+arith/lora@v1"), "lora-hub");
    assert.equal(remote.code, 0, remote.stderr);
    assert.ok((await tensorsOf("lora-hub")).equals(await tensorsOf("lora-local")), "Hub adapter output differs from the local adapter's");
    const card = await readFile(join(dir, "lora-hub", "README.md"), "utf8");
    assert.ok(card.includes(sha), "the model card names the adapter's pinned commit");
  });
});

describe("the Hugging Face cache", () => {
  let cache: string;
  let own: TestHub;
  const cenv = () => env({ HF_ENDPOINT: own.url, HF_HUB_CACHE: cache });
  before(async () => {
    cache = join(dir, "hf-cache");
    own = await startTestHub();
    for (const m of ["base", "expert-add", "expert-sub"]) await own.addCommit(`arith/${m}`, F(m));
  });
  after(async () => {
    await own.close().catch(() => undefined);
  });

  test("`mergeloom download` fills the cache in huggingface_hub's layout, then merges run with the server stopped", async () => {
    const cfg = await config("dl", HUB);
    const d = await runCli(["download", cfg], { env: cenv() });
    assert.equal(d.code, 0, d.stderr);
    const again = await runCli(["download", cfg, "--json"], { env: cenv() });
    assert.equal(again.code, 0, again.stderr);
    assert.ok(
      again.stdout
        .split("\n")
        .filter(Boolean)
        .every((l) => JSON.parse(l).networkBytes === 0),
      "a second download fetches nothing",
    );
    await own.close();
    const r = await merge(cfg, "cached", cenv());
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await tensorsOf("cached")).equals(localRef));
    const off = await merge(cfg, "offline", { ...cenv(), HF_HUB_OFFLINE: "1" });
    assert.equal(off.code, 0, off.stderr);
    assert.ok((await tensorsOf("offline")).equals(localRef));
  });

  test("the cache has the exact layout: blobs named by sha256 (LFS) or git blob id, relative snapshot links, refs/main", async () => {
    const repo = join(cache, "models--arith--expert-sub");
    const snap = join(repo, "snapshots");
    const [sha] = await readdir(snap);
    assert.equal((await readFile(join(repo, "refs", "main"), "utf8")).trim(), sha);
    for (const f of await readdir(join(snap, sha))) {
      const link = join(snap, sha, f);
      assert.ok((await lstat(link)).isSymbolicLink(), `${f} is a symlink`);
      const target = readlinkSync(link);
      assert.match(target, /^\.\.\/\.\.\/blobs\/[0-9a-f]{40,64}$/, `${f} links relatively into blobs`);
      const bytes = await readFile(link);
      const name = target.split("/").at(-1)!;
      const expect = f.endsWith(".safetensors")
        ? createHash("sha256").update(bytes).digest("hex")
        : createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");
      assert.equal(name, expect, `${f}: blob name is its ${f.endsWith(".safetensors") ? "sha256" : "git blob id"}`);
      assert.ok((await readFile(F(`expert-sub/${f}`))).equals(bytes));
    }
    assert.ok(!(await readdir(join(repo, "blobs"))).some((b) => b.endsWith(".incomplete")));
  });

  test("huggingface_hub (Python) reads the cache mergeloom wrote", () => {
    const py = venvPython();
    const script = [
      "import json, os, sys",
      "os.environ['HF_HUB_OFFLINE'] = '1'",
      "from huggingface_hub import scan_cache_dir, hf_hub_download, snapshot_download",
      "info = scan_cache_dir(sys.argv[1])",
      "assert not info.warnings, info.warnings",
      "repos = {r.repo_id: r for r in info.repos}",
      "sub = repos['arith/expert-sub']",
      "assert {r.commit_hash for r in sub.revisions} == {open(os.path.join(sys.argv[1], 'models--arith--expert-sub', 'refs', 'main')).read()}",
      "p = hf_hub_download('arith/expert-sub', 'model-00002-of-00002.safetensors', cache_dir=sys.argv[1])",
      "s = snapshot_download('arith/expert-sub', cache_dir=sys.argv[1])",
      "print(json.dumps({'repos': sorted(repos), 'file': p, 'snapshot': s, 'refs': sorted(next(iter(sub.revisions)).refs)}))",
    ].join("\n");
    const out = JSON.parse(execFileSync(py, ["-c", script, cache], { encoding: "utf8", env: { ...process.env, HF_HUB_DISABLE_TELEMETRY: "1" } })) as {
      repos: string[];
      file: string;
      snapshot: string;
      refs: string[];
    };
    assert.deepEqual(out.repos, ["arith/base", "arith/expert-add", "arith/expert-sub"]);
    assert.deepEqual(out.refs, ["main"]);
    assert.equal(resolve(dirname(out.file)), resolve(out.snapshot));
  });

  test("HF_HUB_OFFLINE=1 with a file missing from the cache fails naming the file; with no cache, naming the revision", async () => {
    const snap = join(cache, "models--arith--expert-sub", "snapshots");
    const [sha] = await readdir(snap);
    await unlink(join(snap, sha, "model-00002-of-00002.safetensors"));
    const r = await merge(await config("off-missing", HUB), "off-missing", { ...cenv(), HF_HUB_OFFLINE: "1" });
    assert.notEqual(r.code, 0);
    const line = r.stderr.trim();
    assert.equal(line.split("\n").length, 1, r.stderr);
    assert.match(line, /^mergeloom: .*arith\/expert-sub@[0-9a-f]{40}\/model-00002-of-00002\.safetensors.*HF_HUB_OFFLINE/);
    assert.ok(!existsSync(join(dir, "off-missing")));
    const none = await merge(await config("off-none", HUB), "off-none", { ...cenv(), HF_HUB_CACHE: join(dir, "empty-cache"), HF_HUB_OFFLINE: "1" });
    assert.notEqual(none.code, 0);
    assert.match(
      none.stderr.trim(),
      /^mergeloom: .*arith\/(base|expert-add|expert-sub)@main.*HF_HUB_OFFLINE is set and the Hugging Face cache .* has no revision 'main'/,
    );
  });
});

describe("Hub errors and faults", () => {
  test("a gated repo: 401 without a token, 403 with a wrong one, works with HF_TOKEN_PATH; the token never reaches the storage host or the output", async () => {
    const cfg = await config("gated", { ...HUB, base: "gated/base" });
    const none = await merge(cfg, "gated-none");
    assert.notEqual(none.code, 0);
    assert.match(none.stderr.trim(), /^mergeloom: read hub gated\/base@main: the Hub answered 401 Unauthorized: .*set HF_TOKEN/);
    const wrong = await merge(cfg, "gated-wrong", env({ HF_TOKEN: "hf_wrong" }));
    assert.notEqual(wrong.code, 0);
    assert.match(
      wrong.stderr.trim(),
      /^mergeloom: read hub gated\/base@main: the Hub answered 403 Forbidden: .*accept its license at http:\/\/127\.0\.0\.1:\d+\/gated\/base/,
    );
    const tokenFile = join(dir, "token");
    await writeFile(tokenFile, `${TOKEN}\n`);
    hub.resetCounters();
    const ok = await merge(cfg, "gated-ok", env({ HF_TOKEN_PATH: tokenFile }), ["--json"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(hub.counters.storageAuthHeaders, 0, "Authorization was forwarded to the storage host");
    assert.ok((await tensorsOf("gated-ok")).equals(localRef));
    assertNoToken(none, wrong, ok);
  });

  test("404s name the repository, the revision or the file", async () => {
    const repo = await merge(await config("nf-repo", { ...HUB, add: "arith/no-such-model" }), "nf-repo");
    assert.match(
      repo.stderr.trim(),
      /^mergeloom: read checkpoint hub arith\/no-such-model@main: the Hub answered 404: repository arith\/no-such-model does not exist/,
    );
    const rev = await merge(await config("nf-rev", { ...HUB, add: "arith/expert-add@nope" }), "nf-rev");
    assert.match(
      rev.stderr.trim(),
      /^mergeloom: read checkpoint hub arith\/expert-add@nope: the Hub answered 404: revision 'nope' does not exist in arith\/expert-add/,
    );
    const broken = join(dir, "broken-repo");
    await (await import("node:fs/promises")).cp(F("expert-sub"), broken, { recursive: true });
    await unlink(join(broken, "model-00002-of-00002.safetensors"));
    await hub.addCommit("arith/broken", broken);
    const file = await merge(await config("nf-file", { ...HUB, sub: "arith/broken" }), "nf-file");
    assert.match(file.stderr.trim(), /^mergeloom: .*shard model-00002-of-00002\.safetensors named in the index does not exist in arith\/broken/);
    for (const r of [repo, rev, file]) assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  });

  test("connections reset mid-body are retried and the output is unchanged", async () => {
    hub.resetCounters();
    hub.faults.resetEvery = 4;
    try {
      const r = await merge(await config("resets", HUB), "resets", env({ HF_HUB_CACHE: join(dir, "cache-resets") }));
      assert.equal(r.code, 0, r.stderr);
    } finally {
      hub.faults.resetEvery = 0;
    }
    assert.ok(hub.counters.resets > 0, "no reset happened");
    assert.ok((await tensorsOf("resets")).equals(localRef));
  });

  test("a server that keeps failing is retried as --http-retries says, then gives up with one line naming the URL", async () => {
    // The revision API of one repo always answers 503: planning retries it, then stops.
    hub.faults.failPaths = ["/api/models/arith/expert-add/"];
    hub.resetCounters();
    try {
      const r = await merge(await config("failing-api", HUB), "failing-api", env(), ["--http-retries", "2"]);
      assert.notEqual(r.code, 0);
      assert.match(
        r.stderr.trim(),
        /^mergeloom: read http:\/\/127\.0\.0\.1:\d+\/api\/models\/arith\/expert-add\/revision\/main\?blobs=true: failed after 3 attempts \(--http-retries 2\): read hub arith\/expert-add@main: the Hub answered 503$/,
      );
      assert.equal(hub.hits.get("GET /api/models/arith/expert-add/revision/main"), 3, "1 attempt + 2 retries");
    } finally {
      hub.faults.failPaths = [];
    }
  });

  test("tensor range reads in the merge threads honour --http-retries too", async () => {
    // Pin first (plan succeeds), then make the storage host fail every read of one model's shard.
    const sha = await hub.addCommit("arith/flaky-store", F("expert-sub"));
    const info = (await (await fetch(`${hub.url}/api/models/arith/flaky-store/revision/${sha}?blobs=true`)).json()) as {
      siblings: Array<{ rfilename: string; lfs?: { sha256: string } }>;
    };
    const shard = info.siblings.find((f) => f.lfs)!.lfs!.sha256;
    hub.faults.failPaths = [`/lfs/${shard}`];
    hub.resetCounters();
    try {
      const r = await merge(await config("failing-store", { ...HUB, sub: "arith/flaky-store" }), "failing-store", env(), ["--http-retries", "1"]);
      assert.notEqual(r.code, 0);
      const line = r.stderr.trim();
      const m =
        /^mergeloom: (?:merge \S+: )?read (http:\/\/127\.0\.0\.1:\d+\/arith\/flaky-store\/resolve\/[0-9a-f]{40}\/\S+) bytes (\d+)-(\d+): failed after 2 attempts \(--http-retries 1\): .*503$/.exec(
          line,
        );
      assert.ok(m, `one line naming the URL and range, got: ${line}`);
      assert.equal(hub.hits.get(`GET /lfs/${shard} bytes=${m[2]}-${m[3]}`), 2, "the named range was tried 1 + 1 times");
    } finally {
      hub.faults.failPaths = [];
    }
  });
});
