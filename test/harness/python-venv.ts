/** The Python venv of the load tests (`.venv-test/`, built by scripts/install-test-deps.sh). */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./repo-root.js";

/** Path of the venv's python; throws with the install command when the venv is missing. */
export function venvPython(): string {
  const py = join(REPO_ROOT, ".venv-test", "bin", "python");
  if (!existsSync(py)) {
    throw new Error(`no Python venv at ${join(REPO_ROOT, ".venv-test")}; run ./scripts/install-test-deps.sh (builds it with torch, transformers, safetensors, peft, numpy)`);
  }
  return py;
}
