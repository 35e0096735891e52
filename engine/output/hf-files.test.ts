import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parse } from "yaml";
import { ConfigError } from "../errors/index.js";
import { chatTemplates } from "./chat-templates.js";
import { copyTokenizerFiles, writeModelCard, writeModelConfig } from "./hf-files.js";
import { fixtureDir, withTempDir } from "../storage/storage-test-support.js";

const BASE = join(fixtureDir(), "base");
const readJson = (p: string) => JSON.parse(readFileSync(p, "utf8")) as Record<string, unknown>;

describe("writeModelConfig", () => {
  test("writes the source config with the layer count and torch_dtype changed and all else kept", async () => {
    await withTempDir(async (dir) => {
      const source = readJson(join(BASE, "config.json"));
      await writeModelConfig(dir, source, { numHiddenLayers: 6, torchDtype: "float16" });
      const out = readJson(join(dir, "config.json"));
      assert.equal(out.num_hidden_layers, 6);
      assert.equal(out.torch_dtype, "float16");
      assert.deepEqual({ ...out, num_hidden_layers: source.num_hidden_layers, torch_dtype: source.torch_dtype }, source);
      await writeModelConfig(dir, { dtype: "bfloat16", num_hidden_layers: 4 }, { torchDtype: "float32" });
      assert.deepEqual(readJson(join(dir, "config.json")), { dtype: "float32", num_hidden_layers: 4, torch_dtype: "float32" });
    });
  });
});

describe("copyTokenizerFiles", () => {
  test("copies the tokenizer files that exist, byte for byte and writable", async () => {
    await withTempDir(async (dir) => {
      const copied = await copyTokenizerFiles(BASE, dir);
      assert.deepEqual(copied.sort(), ["generation_config.json", "tokenizer_config.json", "vocab.json"]);
      for (const f of copied) {
        assert.deepEqual(readFileSync(join(dir, f)), readFileSync(join(BASE, f)));
        assert.equal(statSync(join(dir, f)).mode & 0o200, 0o200);
      }
      assert.deepEqual(readdirSync(dir).sort(), copied.sort());
    });
  });

  test("a named chat template sets chat_template in tokenizer_config.json and keeps the other fields", async () => {
    await withTempDir(async (dir) => {
      await copyTokenizerFiles(BASE, dir, { chatTemplate: "chatml" });
      const cfg = readJson(join(dir, "tokenizer_config.json"));
      assert.equal(cfg.chat_template, chatTemplates().chatml);
      assert.match(String(cfg.chat_template), /<\|im_start\|>/);
      const src = readJson(join(BASE, "tokenizer_config.json"));
      delete cfg.chat_template;
      assert.deepEqual(cfg, src);
    });
  });

  test("a literal Jinja template is used as given; a short non-template string lists the known names", async () => {
    await withTempDir(async (dir) => {
      const literal = "{% for m in messages %}{{ m['content'] }}{% endfor %}";
      await copyTokenizerFiles(BASE, dir, { chatTemplate: literal });
      assert.equal(readJson(join(dir, "tokenizer_config.json")).chat_template, literal);
      await assert.rejects(copyTokenizerFiles(BASE, dir, { chatTemplate: "chatmI" }), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /unknown chat template 'chatmI' \(known: alpaca, chatml, exaone, llama3, mistral, auto/);
        return true;
      });
    });
  });

  test('"auto" picks the template most input models share', async () => {
    await withTempDir(async (dir) => {
      const models = ["m1", "m2", "m3"].map((m) => join(dir, m));
      const templates = ["{{ 'B template' }}", "{{ 'A template' }}", "{{ 'A template' }}"];
      for (const [i, m] of models.entries()) {
        await mkdir(m);
        await writeFile(join(m, "tokenizer_config.json"), JSON.stringify({ chat_template: templates[i] }));
      }
      const out = join(dir, "out");
      await mkdir(out);
      await copyTokenizerFiles(models[0], out, { chatTemplate: "auto", templateSources: models });
      assert.equal(readJson(join(out, "tokenizer_config.json")).chat_template, "{{ 'A template' }}");
    });
  });
});

describe("writeModelCard", () => {
  test("writes front matter with hub base models and tags, the method, the models and the YAML", async () => {
    await withTempDir(async (dir) => {
      const yaml = "merge_method: ties\nbase_model: org/base-7b\nmodels:\n  - model: org/expert-a\n  - model: /data/local-expert\n";
      await writeModelCard(dir, { yaml, method: "ties", models: ["org/base-7b", "org/expert-a", "/data/local-expert"], baseModel: "org/base-7b" });
      const text = readFileSync(join(dir, "README.md"), "utf8");
      const m = /^---\n([\s\S]*?)\n---\n/.exec(text);
      assert.ok(m, "front matter");
      assert.deepEqual(parse(m[1]), { base_model: ["org/base-7b", "org/expert-a"], library_name: "transformers", tags: ["mergekit", "merge", "mergeloom"] });
      assert.match(text, /merged using the ties merge method using \[org\/base-7b\]\(https:\/\/huggingface\.co\/org\/base-7b\) as a base/);
      assert.match(text, /\* \[org\/expert-a\]\(https:\/\/huggingface\.co\/org\/expert-a\)\n\* \/data\/local-expert\n/);
      assert.ok(text.includes("```yaml\n" + yaml + "```\n"));
    });
  });

  test("a config containing a code fence is wrapped in a longer fence", async () => {
    await withTempDir(async (dir) => {
      const yaml = "# note: ```odd```\nmerge_method: linear\n";
      await writeModelCard(dir, { yaml, method: "linear", models: ["/a", "/b"] });
      const text = readFileSync(join(dir, "README.md"), "utf8");
      assert.ok(text.includes("````yaml\n" + yaml + "````\n"));
      assert.ok(!/base_model/.test(text.split("---")[1]));
    });
  });
});
