/**
 * mergekit users' commands run unchanged: `mergekit-yaml CONFIG OUT` with mergekit's options, its
 * size notation, its single-shard file name, what its schema ignores (with warnings; --strict
 * restores the errors), its duplicate-model behaviour and its chat template names — through the
 * built CLI on the arith-llama fixture.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readCheckpointF32 } from "@mergeloom/engine/eval";
import { runCli, type CliResult } from "../harness/run-cli.js";
import { FIXTURES, REPO_ROOT } from "../harness/repo-root.js";

const F = (m: string) => join(FIXTURES, m);
const TIES = `merge_method: ties
base_model: ${F("base")}
models:
  - model: ${F("expert-add")}
    parameters: {weight: 1.0, density: 0.5}
  - model: ${F("expert-sub")}
    parameters: {weight: 1.0, density: 0.5}
parameters: {normalize: true}
dtype: bfloat16
`;

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-mk-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function config(name: string, yaml: string): Promise<string> {
  const p = join(dir, `${name}.yml`);
  await writeFile(p, yaml);
  return p;
}

function mergekitYaml(args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, "bin", "mergekit-yaml.js"), ...args], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const warnings = (stderr: string) => stderr.split("\n").filter((l) => l.startsWith("warning: "));

describe("mergekit-yaml's command line", () => {
  test("`mergekit-yaml CONFIG OUT --cuda --lazy-unpickle --allow-crimes --copy-tokenizer` runs unchanged and says which options do not apply", async () => {
    const out = join(dir, "alias");
    const r = await mergekitYaml([
      await config("alias", TIES),
      out,
      "--cuda",
      "--lazy-unpickle",
      "--allow-crimes",
      "--copy-tokenizer",
      "--out-shard-size",
      "5B",
      "-j",
      "1",
      "--random-seed",
      "3",
      "--write-model-card",
      "--safe-serialization",
      "--low-cpu-memory",
      "--trust-remote-code",
      "--no-clone-tensors",
      "-v",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const w = warnings(r.stderr);
    for (const flag of ["--cuda", "--lazy-unpickle", "--low-cpu-memory", "--trust-remote-code", "-v"]) {
      assert.equal(w.filter((l) => l.startsWith(`warning: ${flag} is accepted for mergekit-yaml compatibility and ignored: `)).length, 1, r.stderr);
    }
    assert.equal(w.length, 5, r.stderr); // honoured options and --no-… defaults warn about nothing
    const files = (await readdir(out)).filter((f) => !f.startsWith(".")).sort(); // .mergeloom-output marks mergeloom's outputs
    assert.deepEqual(files, [
      "README.md",
      "config.json",
      "generation_config.json",
      "mergekit_config.yml",
      "model.safetensors",
      "tokenizer_config.json",
      "vocab.json",
    ]);
    assert.equal(await readFile(join(out, "mergekit_config.yml"), "utf8"), TIES);
  });

  test("--out-shard-size 5B is mergekit's 5e9 bytes (one model.safetensors, no index); 300K shards with an index", async () => {
    const cfg = await config("shards", TIES);
    const one = join(dir, "one");
    assert.equal((await runCli(["merge", cfg, one, "--out-shard-size", "5B"])).code, 0);
    assert.deepEqual(
      (await readdir(one)).filter((f) => f.includes("safetensors")),
      ["model.safetensors"],
    );
    const many = join(dir, "many");
    const r = await runCli(["merge", cfg, many, "--out-shard-size", "300K"]);
    assert.equal(r.code, 0, r.stderr);
    const index = JSON.parse(await readFile(join(many, "model.safetensors.index.json"), "utf8")) as { weight_map: Record<string, string> };
    const shards = new Set(Object.values(index.weight_map));
    assert.ok(shards.size >= 5, `${shards.size} shards`);
    assert.ok(!existsSync(join(many, "model.safetensors")));
  });

  test("--no-copy-tokenizer and --no-write-model-card leave those files out; OUT given twice must agree", async () => {
    const cfg = await config("bare", TIES);
    const out = join(dir, "bare");
    const r = await runCli(["merge", cfg, "-o", out, out, "--no-copy-tokenizer", "--no-write-model-card"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await readdir(out)).filter((f) => !f.startsWith(".")).sort(), ["config.json", "model.safetensors"]);
    const clash = await runCli(["merge", cfg, join(dir, "x"), "-o", join(dir, "y")]);
    assert.equal(clash.code, 2);
    assert.match(clash.stderr, /^mergeloom: merge: output given twice .*give one\n$/);
    const none = await runCli(["merge", cfg]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^mergeloom: merge: no output directory; write `mergeloom merge CONFIG OUT`/);
  });

  test("models of different architectures need --allow-crimes, as in mergekit", async () => {
    const mistral = join(dir, "expert-sub-as-mistral");
    await cp(F("expert-sub"), mistral, { recursive: true });
    const c = JSON.parse(await readFile(join(mistral, "config.json"), "utf8"));
    await writeFile(join(mistral, "config.json"), JSON.stringify({ ...c, architectures: ["MistralForCausalLM"], model_type: "mistral" }));
    const cfg = await config("crimes", TIES.replace(F("expert-sub"), mistral));
    const refused = await runCli(["plan", cfg]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /is LlamaForCausalLM but .* is MistralForCausalLM; mixing architectures needs --allow-crimes/);
    assert.equal((await runCli(["merge", cfg, join(dir, "crimes"), "--allow-crimes"])).code, 0);
  });
});

describe("what mergekit's schema ignores", () => {
  const LENIENT = TIES.replace("parameters: {normalize: true}", "parameters: {normalize: true, filter_wise: false}\nselect_topk: 0.5\nmerge_method: ties");

  test("unknown keys, unused parameters and duplicate keys merge with one warning each; --strict refuses with one line", async () => {
    const cfg = await config("lenient", LENIENT);
    const r = await runCli(["merge", cfg, join(dir, "lenient")]);
    assert.equal(r.code, 0, r.stderr);
    const w = warnings(r.stderr);
    assert.equal(w.length, 3, r.stderr);
    assert.ok(w.some((l) => l.includes("duplicate key 'merge_method'")));
    assert.ok(w.some((l) => l.includes("unknown key 'select_topk'")));
    assert.ok(w.some((l) => l.includes("ignoring parameter 'filter_wise'")));
    const plan = await runCli(["plan", cfg, "--json"]);
    assert.equal(plan.code, 0, plan.stderr);
    assert.equal((JSON.parse(plan.stdout) as { warnings: string[] }).warnings.length, 3);
    for (const cmd of [
      ["merge", cfg, join(dir, "strict")],
      ["plan", cfg],
    ]) {
      const s = await runCli([...cmd, "--strict"]);
      assert.equal(s.code, 1);
      assert.match(s.stderr, /^mergeloom: config merge_method: duplicate key 'merge_method' \(first on line 1\); keep one \(at .*:10:1\)\n$/);
    }
    assert.ok(!existsSync(join(dir, "strict")));
  });

  test("a model listed twice in a slice merges as mergekit does: once, with its last entry's layers and its first weight (hand-computed)", async () => {
    // Checked against mergekit itself (run_mergekit.py): bit-identical to this expectation.
    const cfg = await config(
      "dup",
      `merge_method: linear
slices:
  - sources:
      - model: ${F("expert-add")}
        layer_range: [0, 2]
        parameters: {weight: 0.2}
      - model: ${F("expert-sub")}
        layer_range: [0, 2]
        parameters: {weight: 0.5}
      - model: ${F("expert-add")}
        layer_range: [2, 4]
        parameters: {weight: 0.9}
parameters: {normalize: false}
dtype: float32
`,
    );
    const out = join(dir, "dup");
    const r = await runCli(["merge", cfg, out]);
    assert.equal(r.code, 0, r.stderr);
    const w = warnings(r.stderr);
    assert.equal(w.length, 1, r.stderr);
    assert.match(
      w[0],
      /is listed 2 times \(entries 0, 2\); mergekit keys inputs by model, so it is merged once, from its last entry \(layer_range \[2, 4\]\), and the earlier entries are ignored/,
    );
    const add = readCheckpointF32(F("expert-add"));
    const sub = readCheckpointF32(F("expert-sub"));
    const merged = readCheckpointF32(out);
    assert.equal(merged.size, 3 + 9 * 2);
    for (const [name, t] of merged) {
      const m = /^model\.layers\.(\d+)\.(.*)$/.exec(name);
      const a = add.get(m ? `model.layers.${Number(m[1]) + 2}.${m[2]}` : name)!.data;
      const s = sub.get(name)!.data;
      for (let i = 0; i < t.data.length; i++) {
        const want = Math.fround(Math.fround(0.2 * a[i]) + Math.fround(0.5 * s[i]));
        if (Math.abs(t.data[i] - want) > 1e-7 * Math.max(1, Math.abs(want))) assert.fail(`${name}[${i}]: ${t.data[i]} != ${want}`);
      }
    }
  });

  test("an unknown chat template fails at plan time, before any tensor is merged; mergekit's mistral is built in", async () => {
    const bad = await config("tpl-bad", `${TIES}chat_template: mistrl\n`);
    const out = join(dir, "tpl-bad");
    for (const cmd of [
      ["plan", bad],
      ["merge", bad, out, "--json"],
    ]) {
      const r = await runCli(cmd);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /^mergeloom: config chat_template: unknown chat template 'mistrl' \(known: alpaca, chatml, exaone, llama3, mistral, auto, or a Jinja template string\); did you mean 'mistral'\?/,
      );
      assert.ok(!r.stdout.includes('"type":"plan"'), "failed before planning tensors");
    }
    assert.ok(!existsSync(out));
    const good = join(dir, "tpl");
    assert.equal((await runCli(["merge", await config("tpl", `${TIES}chat_template: mistral\n`), good])).code, 0);
    const tok = JSON.parse(await readFile(join(good, "tokenizer_config.json"), "utf8")) as { chat_template: string };
    assert.match(tok.chat_template, /\[INST\]/);
  });
});
