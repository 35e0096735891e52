/**
 * The Python interpreter of `.venv-test/` (torch CPU, transformers, safetensors, peft, numpy),
 * built by `./scripts/install-test-deps.sh`, for tests that load outputs in the real consumer.
 * A missing venv is an error saying how to build it, never a skipped test.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./repo-root.js";

export function venvPython(): string {
  const py = join(REPO_ROOT, ".venv-test", "bin", "python");
  if (!existsSync(py))
    throw new Error(`${py} is missing: run ./scripts/install-test-deps.sh (it builds .venv-test with torch, transformers, safetensors, peft and numpy)`);
  return py;
}

/** Runs `python -c SCRIPT ARGS…` in the venv; resolves with stdout, rejects with stderr's tail. */
export function runPython(script: string, args: string[] = [], opts: { timeoutMs?: number } = {}): Promise<string> {
  const py = venvPython();
  return new Promise((resolve, reject) => {
    const child = spawn(py, ["-c", script, ...args], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PYTHONHASHSEED: "0", TOKENIZERS_PARALLELISM: "false" },
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 180_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`python exited ${code}: ${err.split("\n").slice(-12).join("\n")}`));
    });
  });
}
