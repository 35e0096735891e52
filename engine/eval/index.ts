// Public entry point of @mergeloom/engine/eval: what other packages may import.
export { CharTokenizer, loadEvalSet } from "./eval-data.js";
export type { EvalSet } from "./eval-data.js";
export { evaluateModelDir } from "./evaluate-model.js";
export { runScoreCommand } from "./fitness/command-fitness.js";
export { combineScores } from "./fitness/fitness-spec.js";
export type { FitnessSpec, FitnessTask, FitnessTaskKind } from "./fitness/fitness-spec.js";
export { OnnxFitness, loadPrompts } from "./fitness/onnx-fitness.js";
export { DEFAULT_SCORER_TIMEOUT_MS, loadScorersFile, parseScorerFlag, parseScorersDocument, runScorerTask, scorerMap, scorersUsed } from "./fitness/scorers.js";
export type { ScorerSpec, Scorers } from "./fitness/scorers.js";
export { loadWeightsF32 } from "./load-weights.js";
export { OnnxEvaluator } from "./onnx-evaluator.js";
export type { EvalDevice, WeightMap, WeightTensor } from "./onnx-evaluator.js";
export { FIXTURE, readCheckpointF32 } from "./test-weights.js";
