/**
 * A genotype as the plain mergekit YAML a candidate is evaluated from and best.yml holds.
 * Two changes to mergekit-evolve's output, both so the YAML means one exact set of weights under
 * mergekit and mergeloom alike: compute in float32 and round to bfloat16 on save (mergekit-evolve
 * writes `dtype: bfloat16`, i.e. bf16 arithmetic), and `int8_mask` only for methods that take it.
 */
import { genotypeToMergeConfig, mergeConfigToYaml, withCommentHeader, type GenomeDefinition } from "./genome.js";

const TAKES_INT8_MASK = new Set(["ties", "dare_ties", "task_arithmetic", "dare_linear", "della", "della_linear", "breadcrumbs", "breadcrumbs_ties"]);

export function candidateYaml(def: GenomeDefinition, genotype: number[], numLayers: number, header?: string): string {
  const cfg = genotypeToMergeConfig(def, genotype, numLayers) as unknown as Record<string, unknown> & { parameters: Record<string, unknown> };
  if (!TAKES_INT8_MASK.has(def.merge_method)) delete cfg.parameters.int8_mask;
  if (def.merge_method === "slerp") delete cfg.parameters.normalize; // slerp has no such parameter
  cfg.dtype = "float32";
  cfg.out_dtype = "bfloat16";
  const body = mergeConfigToYaml(cfg);
  return withCommentHeader(body, header);
}
