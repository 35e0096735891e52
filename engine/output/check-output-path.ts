/**
 * The output must not be, lie inside, or contain any input: a model directory, a single-file
 * checkpoint, a task vector or the tokenizer source. `--overwrite` would otherwise replace the
 * inputs with the merge (and a failed merge would delete them). Symlinks are resolved on both sides.
 */
import { sep } from "node:path";
import { MergeloomError } from "@mergeloom/proto/errors";
import { localPath } from "../driver/tensor-io.js";
import { realpathOfPossiblyMissing } from "./output-dir.js";
import type { MergePlan } from "../plan/build-plan.js";
import { modelLocation } from "../plan/build-plan.js";

export interface PlanInput {
  /** What the config calls it (a model reference or `tokenizer_source`). */
  label: string;
  /** Absolute local path: a directory, or a file for single-file checkpoints. */
  path: string;
}

/** Local paths the plan reads (remote inputs have none). */
export function localInputsOf(plan: MergePlan): PlanInput[] {
  const out: PlanInput[] = [];
  for (const [ref, ck] of plan.checkpoints) {
    const given = localPath(modelLocation(ref));
    if (given === undefined || localPath(ck.location) === undefined) continue;
    const single = given.endsWith(".safetensors") && ck.files.length === 1;
    out.push({ label: `input '${ref}'`, path: single ? ck.files[0] : ck.location });
  }
  const tok = plan.config.tokenizerSource;
  if (tok !== undefined && tok !== "base" && tok !== "union") {
    const p = localPath(modelLocation(tok));
    if (p !== undefined) out.push({ label: `tokenizer_source '${tok}'`, path: p });
  }
  return out;
}

export async function checkOutputAgainstInputs(out: string, inputs: readonly PlanInput[]): Promise<void> {
  const o = await realpathOfPossiblyMissing(out);
  for (const input of inputs) {
    const i = await realpathOfPossiblyMissing(input.path);
    let how: string | undefined;
    if (o === i) how = "is";
    else if (o.startsWith(i + sep)) how = "is inside";
    else if (i.startsWith(o + sep)) how = "contains";
    if (how) {
      throw new MergeloomError("OUTPUT_UNSAFE", `plan output ${out}: the output ${how} ${input.label} (${i}); choose an output directory outside every input`);
    }
  }
}
