// A slerp genome's per-slice base_model, merged for real on arith-llama: with a near-zero t each
// slice is its base model, so the merged layers must be that model's bytes — layers 0–1 from the
// first slice's winner, 2–3 from the second's, embeddings from the first slice's base and the
// final norm / lm_head from the last slice's (mergekit's ConfigReader.base_model and plan_module).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "yaml";
import { FIXTURES } from "../harness/repo-root.js";
import { createDefaultRegistry } from "@mergeloom/engine/methods";
import { parseMergeConfig } from "@mergeloom/engine/config";
import { loadWeightsF32 } from "@mergeloom/engine/eval";
import { candidateYaml } from "@mergeloom/coordinator/evolve";
import type { GenomeDefinition } from "@mergeloom/coordinator/evolve";
import { LocalCandidateEvaluator } from "@mergeloom/coordinator/evolve";

describe("slerp genomes", () => {
  test("each slice is merged against its own base_model and the merge reproduces the winners' weights", async () => {
    const add = join(FIXTURES, "expert-add");
    const sub = join(FIXTURES, "expert-sub");
    const def: GenomeDefinition = { models: [add, sub], merge_method: "slerp", layer_granularity: 2 };
    // group 0: add wins by 40 → t = e^-40/(1+e^-40); group 1: sub wins
    const yaml = candidateYaml(def, [20, -20, -20, 20], 4);
    const cfg = parse(yaml) as { slices: { base_model: string }[] };
    assert.deepEqual(
      cfg.slices.map((s) => s.base_model),
      [add, sub],
    );
    const ev = await LocalCandidateEvaluator.create({ fitness: { batchSize: 1, objective: "weighted", tasks: [] } });
    try {
      const merged = await ev.mergeInMemory(parseMergeConfig(yaml, "slerp.yml", createDefaultRegistry()));
      const [wa, ws] = [await loadWeightsF32(add), await loadWeightsF32(sub)];
      const expectFrom = (name: string): string => {
        const m = /layers\.(\d+)\./.exec(name);
        if (m) return Number(m[1]) < 2 ? "add" : "sub";
        return name.includes("embed_tokens") ? "add" : "sub";
      };
      let checked = 0;
      for (const [name, t] of merged) {
        const want = (expectFrom(name) === "add" ? wa : ws).get(name)!.data;
        const other = (expectFrom(name) === "add" ? ws : wa).get(name)!.data;
        const got = t.data as Float32Array;
        assert.equal(got.length, want.length, name);
        assert.ok(
          got.every((v, i) => v === want[i]),
          `${name} equals expert-${expectFrom(name)}`,
        );
        assert.ok(
          other.some((v, i) => v !== want[i]),
          `${name} differs between the experts`,
        );
        checked++;
      }
      assert.equal(checked, wa.size);
    } finally {
      await ev.close();
    }
  });
});
