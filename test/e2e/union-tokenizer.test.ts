/**
 * Tokenizer merging end to end through the CLI: experts with different added tokens merge into
 * the union vocabulary, every embedding and lm_head row is what mergekit's PermutedEmbeddings
 * makes (expectations computed here by hand from the stored rows, in float64), and the written
 * tokenizer files describe the union.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../harness/run-cli.js";
import { FIXTURES } from "../harness/repo-root.js";
import { readSafetensors, rowOf, writeUnionFixture, type StoredTensor } from "../harness/tokenizer-fixtures.js";
import { outputShardFiles } from "../harness/output-shards.js";

let dir: string;
let fx: { base: string; chat: string; tool: string };
const models = new Map<string, Map<string, StoredTensor>>();
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-union-"));
  fx = await writeUnionFixture(join(dir, "fx"));
  for (const [k, p] of Object.entries(fx)) models.set(k, await readSafetensors(join(p, "model.safetensors")));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const EMBEDS = ["model.embed_tokens.weight", "lm_head.weight"];
const row = (m: string, name: string, r: number) => rowOf(models.get(m)!.get(name)!, r);
const f32 = Math.fround;

async function merge(name: string, yaml: string): Promise<{ out: string; tensors: Map<string, StoredTensor>; stderr: string }> {
  const cfg = join(dir, `${name}.yml`);
  await writeFile(cfg, yaml);
  const out = join(dir, name);
  const r = await runCli(["merge", cfg, "-o", out]);
  assert.equal(r.code, 0, r.stderr);
  const tensors = new Map<string, StoredTensor>();
  for (const file of await outputShardFiles(out)) for (const [k, v] of await readSafetensors(join(out, file))) tensors.set(k, v);
  return { out, tensors, stderr: r.stderr };
}

/** Each output row within bf16 rounding (half an ulp, plus the fp32 sums) of the float64 expectation. */
function assertRows(t: StoredTensor, expected: number[][], what: string): void {
  assert.equal(t.shape[0], expected.length, `${what}: rows`);
  for (let r = 0; r < expected.length; r++) {
    const got = rowOf(t, r);
    for (let j = 0; j < got.length; j++) {
      const e = expected[r][j];
      assert.ok(Math.abs(got[j] - e) <= Math.abs(e) * 2 ** -8 + 1e-7, `${what} row ${r} col ${j}: got ${got[j]}, expected ${e}`);
    }
  }
}

const mean = (rows: number[][]) => rows[0].map((_, j) => f32(rows.reduce((s, r) => s + r[j], 0) / rows.length));

describe("tokenizer merging (tokenizer_source: union / tokenizer: {...})", () => {
  test("a union merge puts base tokens first, then each model's added tokens, and fills the rows a model lacks from the model that has the token", async () => {
    const yaml = `merge_method: linear
base_model: ${fx.base}
models:
  - {model: ${fx.base}, parameters: {weight: 1}}
  - {model: ${fx.chat}, parameters: {weight: 1}}
  - {model: ${fx.tool}, parameters: {weight: 2}}
tokenizer:
  source: union
  pad_to_multiple_of: 16
dtype: float32
out_dtype: bfloat16
`;
    const { out, tensors } = await merge("linear-union", yaml);
    for (const name of EMBEDS) {
      // Each model's rows in the union vocabulary (24 tokens): its own, else the donor's.
      const perm = (m: string) => [
        ...Array.from({ length: 21 }, (_, r) => row(m, name, r)),
        row("chat", name, 21), // <|im_start|>: only chat has it
        row("chat", name, 22), // <|im_end|>
        row("tool", name, 21), // <tool>: only tool has it
      ];
      const P = { base: perm("base"), chat: perm("chat"), tool: perm("tool") };
      // Padding rows 24..31: the mean of each model's 24 rows (fp32, the config dtype).
      const pad = { base: mean(P.base), chat: mean(P.chat), tool: mean(P.tool) };
      const lin = (a: number[], b: number[], c: number[]) => a.map((_, j) => (a[j] + b[j] + 2 * c[j]) / 4);
      const expected = [...P.base.map((_, r) => lin(P.base[r], P.chat[r], P.tool[r])), ...Array.from({ length: 8 }, () => lin(pad.base, pad.chat, pad.tool))];
      assertRows(tensors.get(name)!, expected, name);
    }
    const cfg = JSON.parse(await readFile(join(out, "config.json"), "utf8")) as { vocab_size: number };
    assert.equal(cfg.vocab_size, 32, "vocab_size is the padded union size");
    const tok = JSON.parse(await readFile(join(out, "tokenizer.json"), "utf8")) as {
      added_tokens: { id: number; content: string; special: boolean }[];
      model: { vocab: Record<string, number> };
    };
    assert.deepEqual(
      tok.added_tokens.map((a) => [a.id, a.content, a.special]),
      [
        [0, "<pad>", true],
        [1, "<bos>", true],
        [2, "<eos>", true],
        [21, "<|im_start|>", true],
        [22, "<|im_end|>", true],
        [23, "<tool>", false],
      ],
    );
    assert.equal(Object.keys(tok.model.vocab).length, 21);
    const tcfg = JSON.parse(await readFile(join(out, "tokenizer_config.json"), "utf8")) as { added_tokens_decoder: Record<string, { content: string }> };
    assert.equal(tcfg.added_tokens_decoder["23"].content, "<tool>");
  });

  test("tokenizer.tokens sources (model_token with force, zero) override the defaults, and re-added tokens lose their special flag as in mergekit", async () => {
    const yaml = `merge_method: task_arithmetic
base_model: ${fx.base}
models:
  - {model: ${fx.chat}, parameters: {weight: 0.5}}
  - {model: ${fx.tool}, parameters: {weight: 0.75}}
tokenizer:
  tokens:
    "<tool>": {source: {kind: model_token, model: ${fx.base}, token: "="}, force: true}
    "<|im_end|>": {source: {kind: zero}}
    "q": {source: {kind: zero}}
dtype: float32
out_dtype: bfloat16
`;
    const { out, tensors } = await merge("tokens", yaml);
    for (const name of EMBEDS) {
      const b = (r: number) => row("base", name, r);
      const zero = b(0).map(() => 0);
      // Per model rows for tokens 21..24 (im_start, im_end, tool, q):
      const rows = {
        base: [row("chat", name, 21), zero, b(16), zero],
        chat: [row("chat", name, 21), row("chat", name, 22), b(16), zero],
        tool: [row("chat", name, 21), zero, b(16), zero],
      };
      const ta = (x: number[], c: number[], t: number[]) => x.map((_, j) => x[j] + 0.5 * (c[j] - x[j]) + 0.75 * (t[j] - x[j]));
      const expected: number[][] = [];
      for (let r = 0; r < 21; r++) expected.push(ta(b(r), row("chat", name, r), row("tool", name, r)));
      for (let k = 0; k < 4; k++) expected.push(ta(rows.base[k], rows.chat[k], rows.tool[k]));
      assertRows(tensors.get(name)!, expected, name);
    }
    const tok = JSON.parse(await readFile(join(out, "tokenizer.json"), "utf8")) as { added_tokens: { id: number; content: string; special: boolean }[] };
    assert.deepEqual(
      tok.added_tokens.slice(3).map((a) => [a.id, a.content, a.special]),
      [
        [21, "<|im_start|>", true],
        [22, "<|im_end|>", false],
        [23, "<tool>", false],
        [24, "q", false],
      ],
    );
  });

  test("tokenizer_source naming a model keeps that model's vocabulary and crops every model's rows to it", async () => {
    const yaml = `merge_method: linear
models:
  - {model: ${fx.chat}, parameters: {weight: 1}}
  - {model: ${fx.tool}, parameters: {weight: 1}}
tokenizer_source: ${fx.base}
dtype: float32
out_dtype: bfloat16
`;
    const { tensors } = await merge("base-source", yaml);
    for (const name of EMBEDS) {
      const expected = Array.from({ length: 21 }, (_, r) => row("chat", name, r).map((v, j) => (v + row("tool", name, r)[j]) / 2));
      assertRows(tensors.get(name)!, expected, name);
    }
  });

  test("tokenizer_source: base without a tokenizer.json copies the tokenizer files with a warning and leaves the rows in place", async () => {
    const yaml = `merge_method: linear\nmodels:\n  - {model: ${join(FIXTURES, "expert-add")}, parameters: {weight: 1}}\n  - {model: ${join(FIXTURES, "expert-sub")}, parameters: {weight: 1}}\ntokenizer_source: base\ndtype: float32\n`;
    const { out, stderr } = await merge("no-fast-tokenizer", yaml);
    assert.match(stderr, /warning: tokenizer source '.*expert-add' has no tokenizer\.json, so the vocabularies cannot be merged/);
    assert.deepEqual(
      JSON.parse(await readFile(join(out, "vocab.json"), "utf8")),
      JSON.parse(await readFile(join(FIXTURES, "expert-add", "vocab.json"), "utf8")),
    );
  });

  test("a union without the base model's tokenizer.json fails at plan time naming it", async () => {
    const cfg = join(dir, "no-base-tok.yml");
    await writeFile(cfg, `merge_method: linear\nmodels:\n  - {model: ${join(FIXTURES, "expert-add")}, parameters: {weight: 1}}\ntokenizer_source: union\n`);
    const r = await runCli(["merge", cfg, "-o", join(dir, "no-base-tok-out")]);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr.trim(),
      /^mergeloom: .*the base model '.*expert-add' has no tokenizer\.json; tokenizer merging needs a fast \(tokenizer\.json\) tokenizer for it$/,
    );
  });

  test("a token source naming a model without the token fails at plan time with the field", async () => {
    const cfg = join(dir, "bad.yml");
    await writeFile(
      cfg,
      `merge_method: linear\nmodels:\n  - {model: ${fx.base}, parameters: {weight: 1}}\n  - {model: ${fx.chat}, parameters: {weight: 1}}\ntokenizer:\n  tokens:\n    "<tool2>": {source: ${fx.base}}\n`,
    );
    const r = await runCli(["merge", cfg, "-o", join(dir, "bad-out")]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr.trim(), /^mergeloom: .*tokenizer\.tokens\.<tool2>\.source: token '<tool2>' is not in the vocabulary of/);
  });
});
