/**
 * Issue 9, output safety through the built CLI, as a user would hit it: --overwrite never deletes
 * what is not an earlier mergeloom output (item 1), the output never overlaps an input (item 2),
 * a tokenizer source must hold a tokenizer (item 6), FIFOs/devices/directories as checkpoint files
 * are refused instead of blocking (item 9), echoed config values are capped (item 15), a second
 * run on a locked output fails up front (item 17), and a full disk fails early or names the file
 * (item 18, on a real 2 MB tmpfs).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, type CliResult } from "../harness/run-cli.js";
import { FIXTURES } from "../harness/repo-root.js";

let root: string;
/** The working directory of a user: config, input models and a file of their own. */
let work: string;

const linear2 = (a: string, b: string, extra = "") =>
  `merge_method: linear\nmodels:\n  - model: ${a}\n    parameters: { weight: 0.5 }\n  - model: ${b}\n    parameters: { weight: 0.5 }\n${extra}`;

before(async () => {
  root = await mkdtemp(join(tmpdir(), "mergeloom-outsafe-"));
  work = join(root, "work");
  await mkdir(work);
  await cp(join(FIXTURES, "expert-add"), join(work, "a"), { recursive: true });
  await cp(join(FIXTURES, "expert-sub"), join(work, "b"), { recursive: true });
  await writeFile(join(work, "cfg.yml"), linear2("a", "b"));
  await writeFile(join(work, "notes.txt"), "my notes\n");
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Every path under `dir` with its size: proof that nothing was deleted or rewritten. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((x, y) => x.name.localeCompare(y.name))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p, `${rel}${e.name}/`);
      else out.push(`${rel}${e.name}:${e.isFile() ? readFileSync(p).length : "special"}`);
    }
  };
  walk(dir, "");
  return out;
}

/** A refusal: non-zero exit, one error line `mergeloom: ...` matching `re` (after at most the plan summary), no stack trace. */
function assertRefused(r: CliResult, re: RegExp): string {
  assert.notEqual(r.code, 0, `expected a refusal, got exit 0:\n${r.stdout}${r.stderr}`);
  assert.notEqual(r.code, null, "killed by the test timeout: the command blocked");
  const lines = r.stderr.trim().split("\n");
  const errors = lines.filter((l) => !l.startsWith("plan: "));
  assert.equal(errors.length, 1, `one error line expected:\n${r.stderr}`);
  assert.match(errors[0], /^mergeloom: /);
  assert.match(errors[0], re);
  return errors[0];
}

const merge = (args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) =>
  runCli(["merge", ...args], { cwd: opts.cwd ?? work, env: opts.env, timeoutMs: 30_000 });

describe("--overwrite replaces only earlier mergeloom outputs (item 1)", () => {
  test("an empty -o is an error, with or without --overwrite, and the working directory is untouched", async () => {
    const before = snapshot(work);
    assertRefused(await merge(["cfg.yml", "-o", ""]), /the output path is empty; pass a new directory with -o DIR/);
    assertRefused(await merge(["cfg.yml", "-o", "", "--overwrite"]), /the output path is empty/);
    assert.deepEqual(snapshot(work), before);
  });

  test("-o . --overwrite, -o .. --overwrite, -o / and the home directory are refused naming the path", async () => {
    const before = snapshot(work);
    assertRefused(
      await merge(["cfg.yml", "-o", ".", "--overwrite"]),
      new RegExp(`write output ${work}: ${work} is the current directory; a merge never replaces it`),
    );
    assertRefused(await merge(["cfg.yml", "-o", "..", "--overwrite"]), new RegExp(`${root} contains the current directory`));
    assertRefused(await merge(["cfg.yml", "-o", "/", "--overwrite"]), /\/ is the filesystem root/);
    const home = join(work, "home");
    await mkdir(home);
    assertRefused(await merge(["cfg.yml", "-o", home, "--overwrite"], { env: { HOME: home } }), new RegExp(`${home} is the home directory`));
    await rm(home, { recursive: true });
    assert.deepEqual(snapshot(work), before);
  });

  test("a directory without the .mergeloom-output marker is never replaced, even with a mergeloom model card in it", async () => {
    const keep = join(work, "keep");
    await mkdir(keep);
    await writeFile(join(keep, "README.md"), "---\ntags: [mergekit, merge, mergeloom]\n---\n# keep\n");
    await writeFile(join(keep, "config.json"), "{}");
    const before = snapshot(keep);
    assertRefused(
      await merge(["cfg.yml", "-o", "keep", "--overwrite"]),
      new RegExp(`${keep} is not a mergeloom output \\(no \\.mergeloom-output marker\\); --overwrite only replaces earlier mergeloom outputs`),
    );
    assert.deepEqual(snapshot(keep), before);
    await rm(keep, { recursive: true });
  });

  test("an earlier output is replaced, but not once it holds files that are not model files", async () => {
    const out = join(work, "merged");
    assert.equal((await merge(["cfg.yml", "-o", "merged"])).code, 0);
    const first = JSON.parse(readFileSync(join(out, ".mergeloom-output"), "utf8")) as { tool: string; jobId: string; pid: number; host: string };
    assert.equal(first.tool, "mergeloom");
    assert.equal(first.host, hostname());
    const r = await merge(["cfg.yml", "-o", "merged", "--overwrite"]);
    assert.equal(r.code, 0, r.stderr);
    const second = JSON.parse(readFileSync(join(out, ".mergeloom-output"), "utf8")) as { jobId: string };
    assert.notEqual(second.jobId, first.jobId);
    await writeFile(join(out, "notes.txt"), "mine");
    await mkdir(join(out, "checkpoints"));
    const before = snapshot(out);
    assertRefused(
      await merge(["cfg.yml", "-o", "merged", "--overwrite"]),
      /merged holds files that are not part of a model output \((checkpoints\/, notes\.txt|notes\.txt, checkpoints\/)\); --overwrite never deletes them/,
    );
    assert.deepEqual(snapshot(out), before);
    await rm(out, { recursive: true });
  });
});

describe("the output never overlaps an input (item 2)", () => {
  test("equal to, inside, or a parent of an input model is refused at plan time naming both paths", async () => {
    const before = snapshot(work);
    assertRefused(await merge(["cfg.yml", "-o", "a", "--overwrite"]), new RegExp(`plan output ${work}/a: the output is input 'a' \\(${work}/a\\)`));
    assertRefused(await merge(["cfg.yml", "-o", "a/merged"]), new RegExp(`plan output ${work}/a/merged: the output is inside input 'a' \\(${work}/a\\)`));
    const cfg = join(root, "abs.yml");
    await writeFile(cfg, linear2(join(work, "a"), join(work, "b")));
    assertRefused(
      await merge([cfg, "-o", work, "--overwrite"], { cwd: root }),
      new RegExp(`plan output ${work}: the output contains input '${work}/a' \\(${work}/a\\)`),
    );
    assert.deepEqual(snapshot(work), before);
  });

  test("symlinks are resolved: an output reached through a link into an input is refused", async () => {
    await symlink(join(work, "b"), join(root, "link-to-b"));
    assertRefused(await merge(["cfg.yml", "-o", join(root, "link-to-b", "out")]), new RegExp(`the output is inside input 'b' \\(${work}/b\\)`));
  });

  test("the tokenizer source and task vector directories count as inputs", async () => {
    await cp(join(FIXTURES, "expert-mul"), join(work, "tok"), { recursive: true });
    await writeFile(join(work, "tok.yml"), linear2("a", "b", "tokenizer_source: tok\n"));
    assertRefused(await merge(["tok.yml", "-o", "tok/merged"]), new RegExp(`the output is inside tokenizer_source 'tok' \\(${work}/tok\\)`));
    await writeFile(
      join(work, "vec.yml"),
      `merge_method: linear\nmodels:\n  - model: a\n    parameters: { weight: 1.0 }\n    vectors: [{ path: tok, scale: 0.5 }]\n`,
    );
    assertRefused(await merge(["vec.yml", "-o", "tok/merged"]), new RegExp(`the output is inside input 'tok' \\(${work}/tok\\)`));
    assert.equal(existsSync(join(work, "tok", "merged")), false);
  });
});

describe("a tokenizer source must hold a tokenizer (item 6)", () => {
  test("tokenizer_source: /etc fails at plan time, and merge writes nothing", async () => {
    await writeFile(join(work, "etc.yml"), linear2("a", "b", "tokenizer_source: /etc\n"));
    assertRefused(
      await runCli(["plan", "etc.yml"], { cwd: work }),
      /^mergeloom: config tokenizer_source: '\/etc' has no tokenizer files \(looked for tokenizer\.json, tokenizer\.model, vocab\.json, tokenizer_config\.json\)/,
    );
    assertRefused(await merge(["etc.yml", "-o", "etc-out"]), /tokenizer_source: '\/etc' has no tokenizer files/);
    assert.deepEqual(
      readdirSync(work).filter((f) => f.startsWith("etc-out")),
      [],
    );
  });
});

describe("non-regular files as checkpoint files are refused, never waited on (item 9)", () => {
  const mkfifo = (p: string): void => {
    execFileSync("mkfifo", [p]);
  };
  const cases: Array<[string, (dir: string) => Promise<void>, RegExp]> = [
    ["a FIFO as model.safetensors", async (d) => mkfifo(join(d, "model.safetensors")), /model\.safetensors: is a named pipe \(FIFO\), not a regular file/],
    [
      "a FIFO as config.json",
      async (d) => {
        await cp(join(FIXTURES, "expert-add", "model.safetensors"), join(d, "model.safetensors"));
        mkfifo(join(d, "config.json"));
      },
      /config\.json: is a named pipe \(FIFO\), not a regular file/,
    ],
    ["a FIFO as the shard index", async (d) => mkfifo(join(d, "model.safetensors.index.json")), /model\.safetensors\.index\.json: is a named pipe \(FIFO\)/],
    [
      "a FIFO as a shard named in the index",
      async (d) => {
        await writeFile(
          join(d, "model.safetensors.index.json"),
          JSON.stringify({ weight_map: { "model.embed_tokens.weight": "model-00001-of-00001.safetensors" } }),
        );
        mkfifo(join(d, "model-00001-of-00001.safetensors"));
      },
      /model-00001-of-00001\.safetensors: is a named pipe \(FIFO\)/,
    ],
    [
      "a character device as model.safetensors",
      async (d) => symlink("/dev/zero", join(d, "model.safetensors")),
      /model\.safetensors: is a character device, not a regular file/,
    ],
    ["a directory as model.safetensors", async (d) => mkdir(join(d, "model.safetensors")), /model\.safetensors: is a directory, not a regular file/],
  ];
  cases.forEach(([what, make, re], i) => {
    test(`${what}: ${i === 0 ? "plan and merge fail" : "plan fails"} at once with one line`, async () => {
      const d = join(work, `special-${i}`);
      await mkdir(d);
      if (!what.includes("config.json")) await cp(join(FIXTURES, "expert-add", "config.json"), join(d, "config.json"));
      await make(d);
      await writeFile(join(work, `special-${i}.yml`), linear2("a", `special-${i}`));
      const t0 = Date.now();
      assertRefused(await runCli(["plan", `special-${i}.yml`], { cwd: work, timeoutMs: 15_000 }), re);
      // merge plans through the same code; once is enough to show it refuses too and leaves nothing.
      if (i === 0) {
        assertRefused(await merge([`special-${i}.yml`, "-o", `special-out-${i}`]), re);
        assert.equal(existsSync(join(work, `special-out-${i}`)), false);
      }
      assert.ok(Date.now() - t0 < 15_000);
    });
  });

  test("a FIFO among the tokenizer source's files fails at plan time", async () => {
    const d = join(work, "tok-fifo");
    await cp(join(FIXTURES, "expert-add"), d, { recursive: true });
    await rm(join(d, "vocab.json"));
    mkfifo(join(d, "vocab.json"));
    await writeFile(join(work, "tok-fifo.yml"), linear2("a", "b", "tokenizer_source: tok-fifo\n"));
    assertRefused(
      await runCli(["plan", "tok-fifo.yml"], { cwd: work, timeoutMs: 15_000 }),
      new RegExp(`config tokenizer_source: ${d}/vocab\\.json is a named pipe \\(FIFO\\), not a regular file`),
    );
  });
});

describe("echoed config values are capped (item 15)", () => {
  test("a 1 MB merge_method or parameter value gives a short error line, not a 1 MB one", async () => {
    const huge = "x".repeat(1_000_000);
    await writeFile(join(work, "huge-method.yml"), `merge_method: ${huge}\nmodels:\n  - model: a\n`);
    const l1 = assertRefused(await runCli(["plan", "huge-method.yml"], { cwd: work }), /unknown merge method 'x{20,}…x{20,}' \(1000000 characters\)/);
    assert.ok(l1.length < 600, `line is ${l1.length} characters`);
    await writeFile(join(work, "huge-param.yml"), `merge_method: linear\nmodels:\n  - model: a\n    parameters: { weight: "${huge}" }\n`);
    const l2 = assertRefused(await runCli(["plan", "huge-param.yml"], { cwd: work }), /…/);
    assert.ok(l2.length < 600, `line is ${l2.length} characters`);
  });
});

describe("one run at a time per output (item 17)", () => {
  test("a lock held by a live process refuses the second run naming pid and host; a dead owner's lock is taken over", async () => {
    const out = join(work, "locked");
    const holder = spawn("sleep", ["60"], { stdio: "ignore" });
    try {
      await writeFile(`${out}.mergeloom-lock`, JSON.stringify({ pid: holder.pid, host: hostname(), jobId: "other", startedAt: Date.now() }));
      assertRefused(
        await merge(["cfg.yml", "-o", "locked"]),
        new RegExp(
          `^mergeloom: write output ${out}: another mergeloom run \\(pid ${holder.pid} on host ${hostname()}\\) is writing ${out}; wait for it to finish or stop it`,
        ),
      );
      assert.equal(existsSync(out), false);
    } finally {
      holder.kill("SIGKILL");
      await new Promise((r) => holder.once("exit", r));
    }
    // The holder is dead now: its lock is stale and the next run takes it over.
    const r = await merge(["cfg.yml", "-o", "locked"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync(`${out}.mergeloom-lock`), false, "the lock is released");
    assert.ok(existsSync(join(out, "model.safetensors"))); // one shard: named as mergekit names it, no index
  });

  test("a lock written from another host is never taken over", async () => {
    const out = join(work, "remote-locked");
    await writeFile(`${out}.mergeloom-lock`, JSON.stringify({ pid: 1, host: "some-other-host", startedAt: Date.now() }));
    assertRefused(
      await merge(["cfg.yml", "-o", "remote-locked"]),
      /another mergeloom run \(pid 1 on host some-other-host\) is writing .*remote-locked; .*if it is gone, delete .*remote-locked\.mergeloom-lock/,
    );
    await rm(`${out}.mergeloom-lock`);
  });
});

describe("a full disk fails early, or names the file (item 18)", () => {
  let small: string | undefined;
  before(async () => {
    const dir = join(root, "small");
    await mkdir(dir);
    const r = spawnSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", dir], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`this test mounts a 2 MB tmpfs and needs root (CAP_SYS_ADMIN): mount said ${r.stderr || r.error}`);
    small = dir;
    // Four experts in float32: 2.98 MB of tensors, more than the 2 MB filesystem holds.
    const experts = ["expert-add", "expert-sub", "expert-mul", "expert-rev"]
      .map((e) => `  - model: ${join(FIXTURES, e)}\n    parameters: { weight: 0.25 }`)
      .join("\n");
    await writeFile(join(root, "f32.yml"), `merge_method: linear\nmodels:\n${experts}\nout_dtype: float32\n`);
  });
  after(() => {
    if (small) spawnSync("umount", [small]);
  });

  test("the free-space check refuses before any work, saying what it needs and how to skip it", async () => {
    const out = join(small!, "merged");
    assertRefused(
      await merge([join(root, "f32.yml"), "-o", out], { cwd: root }),
      new RegExp(
        `^mergeloom: write output ${out}: the output needs \\d\\.\\d MB but the filesystem of ${small} has \\d\\.\\d MB free; free space, choose an output on another filesystem, or pass --no-space-check$`,
      ),
    );
    assert.deepEqual(readdirSync(small!), []);
  });

  test("with --no-space-check the ENOSPC error names the file being written, and nothing is left behind", async () => {
    const out = join(small!, "merged");
    assertRefused(
      await merge([join(root, "f32.yml"), "-o", out, "--no-space-check"], { cwd: root }),
      new RegExp(`${small}/merged\\.mergeloom-tmp-\\w+/model\\.safetensors: no space left on the device \\(ENOSPC\\)`),
    );
    assert.deepEqual(readdirSync(small!), []);
  });
});
