/** The repository root and what the tests use from it (found by the engine's one repo-root finder). */
import { join } from "node:path";
import { repoRoot } from "@mergeloom/engine/testing";

export const REPO_ROOT = repoRoot();
export const FIXTURES = join(REPO_ROOT, "fixtures", "arith-llama");
export const CLI = join(REPO_ROOT, "bin", "mergeloom.js");
