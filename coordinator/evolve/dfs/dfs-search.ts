/**
 * Plugs the DFS genome into the evolve loop (run-evolve.ts's EvolveGenome): reads the models'
 * layer counts and architecture, turns genotypes into passthrough YAML, writes best.onnx (the graph
 * for the best path's layer count) next to best.yml, and describes the best path in report.md.
 */
import { writeFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError } from "@mergeloom/engine/errors";
import { buildLlamaOnnxGraph, type LlamaGraphConfig } from "./llama-onnx-graph.js";
import { openModel } from "@mergeloom/engine/storage";
import type { EvolveGenome } from "../run-evolve.js";
import { llamaGraphConfigOf, sameArchitecture } from "./dfs-candidate-evaluator.js";
import { decodeDfsPath, describePath, dfsCandidateYaml, dfsGenotypeLength, dfsInitialGenotype, dfsSlots, type DfsGenomeDefinition } from "./dfs-genome.js";

export interface DfsModels {
  layerCounts: number[];
  /** The first model's architecture (num_hidden_layers = its own count). */
  graphConfig: LlamaGraphConfig;
}

/** Layer counts and the shared architecture of the genome's models. */
export async function readDfsModels(def: DfsGenomeDefinition): Promise<DfsModels> {
  const configs: LlamaGraphConfig[] = [];
  for (const m of def.models) {
    const ck = await openModel(m);
    configs.push(llamaGraphConfigOf(ck.config, m));
  }
  configs.forEach((c, i) => {
    const diff = sameArchitecture(configs[0], c);
    if (diff)
      throw new ConfigError(
        `genome.models[${i}]`,
        `model '${def.models[i]}' differs from '${def.models[0]}' (${diff}); a layer path needs models of one architecture`,
      );
  });
  return { layerCounts: configs.map((c) => c.num_hidden_layers), graphConfig: configs[0] };
}

export async function createDfsGenome(def: DfsGenomeDefinition, models?: DfsModels): Promise<EvolveGenome> {
  const { layerCounts, graphConfig } = models ?? (await readDfsModels(def));
  const m = layerCounts.reduce((a, b) => a + b, 0);
  const t = dfsSlots(def, layerCounts);
  if (def.max_layers !== null && def.max_layers > t) {
    throw new ConfigError("genome.max_layers", `${def.max_layers} exceeds the ${t} slots (repeats ${def.repeats} × ${m} layers); lower it or raise repeats`);
  }
  const pathOf = (x: readonly number[]) => decodeDfsPath(def, layerCounts, x);
  return {
    numLayers: m,
    length: dfsGenotypeLength(def, layerCounts),
    x0: dfsInitialGenotype(def, layerCounts),
    title: `dfs layer path over ${def.models.length} models (${m} layers, repeats ${def.repeats}, ${t} slots${def.scaling ? ", scaled" : ""})`,
    yaml(x, header) {
      const n = pathOf(x).length;
      const h = header === undefined ? undefined : `${header}\nlayer path: ${n} layers; score it with: mergeloom eval MODEL --onnx best.onnx --data ...`;
      return dfsCandidateYaml(def, layerCounts, x, h);
    },
    async writeBestFiles(out, x) {
      const bytes = buildLlamaOnnxGraph({ ...graphConfig, num_hidden_layers: pathOf(x).length });
      const tmp = join(out, `best.onnx.tmp-${process.pid}`);
      await writeFile(tmp, bytes);
      await rename(tmp, join(out, "best.onnx"));
    },
    describeBest(x) {
      const path = pathOf(x);
      return [
        "",
        "## Best layer path",
        "",
        `${path.length} layers (best.onnx is the evaluation graph for ${path.length} layers): ${describePath(def.models, path)}`,
        "",
        "Embeddings come from the first slice's model, model.norm and lm_head from the last slice's (mergekit passthrough). A factor ×s scales that layer's o_proj and down_proj weights (its residual-branch outputs).",
        "",
      ];
    },
  };
}
