/** `--scorer NAME=COMMAND` (repeatable), `--scorers-file FILE` and `--gpu ID`, shared by `mergeloom worker` and `mergeloom evolve`. */
import type { Command } from "commander";
import { DEFAULT_SCORER_TIMEOUT_MS, loadScorersFile, parseScorerFlag, scorerMap, type ScorerSpec } from "@mergeloom/engine/eval";
import { parseIntFlag } from "./parse-size.js";

export interface ScorerFlags {
  scorer: string[];
  scorersFile?: string;
  scorerTimeout?: string;
  gpu?: string;
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

export function addScorerOptions(cmd: Command): Command {
  return cmd
    .option(
      "--scorer <name=command>",
      "a named scorer: runs COMMAND ({checkpoint} = candidate checkpoint dir) and reads its last JSON line as the score (repeatable)",
      collect,
      [],
    )
    .option("--scorers-file <file>", "scorers from a YAML/JSON file: scorers: {NAME: COMMAND or {command, timeout}}")
    .option("--scorer-timeout <seconds>", `kill a --scorer command after this long (default ${DEFAULT_SCORER_TIMEOUT_MS / 1000})`)
    .option("--gpu <id>", "GPU given to scorers as CUDA_VISIBLE_DEVICES (default: $MERGELOOM_GPU, else unset)");
}

export async function scorersFrom(flags: ScorerFlags): Promise<Map<string, ScorerSpec>> {
  const timeoutMs = flags.scorerTimeout === undefined ? DEFAULT_SCORER_TIMEOUT_MS : parseIntFlag(flags.scorerTimeout, "--scorer-timeout", 1) * 1000;
  const fromFlags = flags.scorer.map((s) => parseScorerFlag(s, timeoutMs));
  const fromFile = flags.scorersFile ? await loadScorersFile(flags.scorersFile) : [];
  return scorerMap(fromFlags, fromFile);
}

export function gpuFrom(flags: ScorerFlags, env: NodeJS.ProcessEnv): string | undefined {
  return flags.gpu ?? env.MERGELOOM_GPU ?? undefined;
}
