// Public entry point of @mergeloom/coordinator/evolve: what other packages may import.
export type { Candidate, CandidateEvaluator, CandidateResult } from "./candidate-evaluator.js";
export { candidateYaml } from "./candidate-yaml.js";
export { buildLlamaOnnxGraph } from "./dfs/llama-onnx-graph.js";
export type { LlamaGraphConfig } from "./dfs/llama-onnx-graph.js";
export type { GenomeDefinition } from "./genome.js";
export { LocalCandidateEvaluator } from "./local-candidate-evaluator.js";
export { NatsCandidateEvaluator, deriveSearchId, evalTaskId } from "./nats-candidate-evaluator.js";
export { runEvolve } from "./run-evolve.js";
export { parseSearchConfig } from "./search-config.js";
export { pearson, spearman } from "./evolve-report.js";
export { coarseGenome, coarseToFinePhases, fineGenome, runCoarseToFine } from "./coarse-search.js";
