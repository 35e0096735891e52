// Public entry point of @mergeloom/engine/testing: test support shared by every package's tests.
export { arithFixtures, repoRoot } from "./repo-paths.js";
