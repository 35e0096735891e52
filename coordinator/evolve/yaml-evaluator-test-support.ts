// Test support for the recommendation tests: an evaluator that scores the merge a candidate's
// YAML describes by a plain function of its slice weights (the search loop is under test, not the merge).
import { join } from "node:path";
import { parse } from "yaml";
import { repoRoot } from "@mergeloom/engine/testing";
import type { Candidate, CandidateEvaluator, CandidateResult } from "./candidate-evaluator.js";

type Yaml = { slices: { sources: { parameters?: { weight: number } }[] }[] };

/** The first two sources' weights of every slice, in order. */
export const weights = (text: string): number[] => (parse(text) as Yaml).slices.flatMap((s) => s.sources.slice(0, 2).map((x) => x.parameters!.weight));

/** −Σ (w − 0.6)² over every slice weight: its maximum is a merge, not a lucky sample. */
export const f = (w: number[]): number => -w.reduce((a, x) => a + (x - 0.6) ** 2, 0);

/** Scores each candidate by `f` of its weights, recording the ids it saw. */
export function yamlEvaluator(calls: string[]): CandidateEvaluator {
  return {
    async evaluate(cs: readonly Candidate[]): Promise<CandidateResult[]> {
      return cs.map((c) => {
        calls.push(c.id);
        const v = f(weights(c.mergeYaml));
        return { id: c.id, scores: { s: v }, fitness: v };
      });
    },
    async close() {},
  };
}

/** Two arith-llama experts from the repository's fixtures. */
export const models = ["expert-add", "expert-sub"].map((m) => join(repoRoot(), "fixtures", "arith-llama", m));
