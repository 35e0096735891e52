/** The evaluator of a `genome: {kind: dfs}` search (in-process; graphs are generated per layer count). */
import { MergeloomError } from "@mergeloom/proto/errors";
import type { SearchConfig } from "../search-config.js";
import { DfsCandidateEvaluator } from "./dfs-candidate-evaluator.js";
import { readDfsModels } from "./dfs-search.js";

export async function createDfsEvaluator(config: SearchConfig, nats = false): Promise<DfsCandidateEvaluator> {
  if (!config.dfs) throw new MergeloomError("USAGE", "evolve: createDfsEvaluator needs a search with genome.kind: dfs");
  // NATS eval workers score with one fixed graph file; a DFS candidate needs a graph per layer count.
  if (nats) throw new MergeloomError("USAGE", "evolve --nats: dfs (layer path) searches are evaluated in-process only; run without --nats");
  const { graphConfig } = await readDfsModels(config.dfs);
  return DfsCandidateEvaluator.create({ fitness: config.fitness, graphConfig, mergeSeed: config.search.mergeSeed });
}
