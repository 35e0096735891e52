/**
 * `mergeloom lora extract` on the arith fixture: the adapter loads in PEFT, PEFT's merge of it
 * reproduces the errors mergeloom reports, and the randomized SVD's error is within 1% of the
 * optimal truncated SVD (Eckart–Young, numpy's exact SVD) for every decomposed weight.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { runCli } from "../harness/run-cli.js";
import { FIXTURES, REPO_ROOT } from "../harness/repo-root.js";
import { venvPython } from "../harness/python-venv.js";

const run = promisify(execFile);
let dir: string;
let python: string;
before(async () => {
  python = venvPython();
  dir = await mkdtemp(join(tmpdir(), "mergeloom-extract-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("mergeloom lora extract", () => {
  test("the adapter loads in PEFT and its error per weight is within 1% of the optimal rank-8 error", async () => {
    const out = join(dir, "adapter");
    const r = await runCli(["lora", "extract", join(FIXTURES, "expert-add"), "--base", join(FIXTURES, "base"), "-r", "8", "-o", out, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as { maxRank: number; relError: number; tensors: { name: string; kind: string; relError?: number }[] };
    assert.equal(rep.maxRank, 8);
    const cfg = JSON.parse(await readFile(join(out, "adapter_config.json"), "utf8")) as Record<string, unknown>;
    assert.deepEqual(cfg.target_modules, ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]);
    assert.equal(cfg.r, 8);
    assert.equal(cfg.lora_alpha, 8);
    assert.deepEqual([...(cfg.modules_to_save as string[])].sort(), ["embed_tokens", "input_layernorm", "lm_head", "norm", "post_attention_layernorm"]);
    const { stdout } = await run(
      python,
      [join(REPO_ROOT, "test", "reference", "check_extracted_lora.py"), join(FIXTURES, "base"), join(FIXTURES, "expert-add"), out, "8"],
      {
        maxBuffer: 16 << 20,
        env: { ...process.env, HF_HUB_OFFLINE: "1", TRANSFORMERS_VERBOSITY: "error" },
      },
    );
    const py = JSON.parse(stdout.trim().split("\n").pop()!) as {
      peft_loaded: boolean;
      max_full_module_diff: number;
      tensors: Record<string, { optimal: number; peft: number }>;
    };
    assert.equal(py.peft_loaded, true);
    assert.equal(py.max_full_module_diff, 0, "modules_to_save are the fine-tuned tensors");
    const lora = rep.tensors.filter((t) => t.kind === "lora");
    assert.equal(lora.length, 28);
    for (const t of lora) {
      const ref = py.tensors[t.name];
      assert.ok(ref, t.name);
      assert.ok(t.relError! <= ref.optimal * 1.01, `${t.name}: ${t.relError} vs optimal ${ref.optimal}`);
      assert.ok(Math.abs(t.relError! - ref.peft) <= 1e-4, `${t.name}: reported ${t.relError}, PEFT's merge gives ${ref.peft}`);
    }
  });

  test("an existing output is refused without --overwrite", async () => {
    const r = await runCli(["lora", "extract", join(FIXTURES, "expert-add"), "--base", join(FIXTURES, "base"), "-r", "2", "-o", FIXTURES]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr.trim(), /^mergeloom: lora extract .*arith-llama: the output already exists; choose another -o or pass --overwrite$/);
  });
});
