import { ConfigError } from "../errors/index.js";
import type { DroppedInput, MergeMethod } from "../methods/define-merge-method.js";

type CheckCtx = Parameters<NonNullable<MergeMethod["droppedInputs"]>>[0];

interface ModelTally {
  tensors: number;
  dropped: number;
  first?: { tensor: string; numel: number; drop: DroppedInput };
}

/**
 * Counts, per model, the tensors a method keeps nothing of (`MergeMethod.droppedInputs`), so that
 * a merge never exits 0 with a model silently left out: a model dropped from every tensor it
 * feeds is refused, one dropped from some is warned about (mergekit does the same silently).
 */
export class DroppedModels {
  private readonly tally = new Map<string, ModelTally>();

  constructor(private readonly method: MergeMethod) {}

  /** Records one planned tensor. */
  add(ctx: CheckCtx): void {
    if (!this.method.droppedInputs) return;
    const dropped = new Map(this.method.droppedInputs(ctx).map((d) => [d.input, d]));
    ctx.inputs.forEach((input, i) => {
      if (i === ctx.baseIndex) return;
      const t = this.tally.get(input.model) ?? { tensors: 0, dropped: 0 };
      t.tensors++;
      const drop = dropped.get(i);
      if (drop) {
        t.dropped++;
        t.first ??= { tensor: ctx.tensorName, numel: ctx.shape.reduce((a, b) => a * b, 1), drop };
      }
      this.tally.set(input.model, t);
    });
  }

  /** Throws for a model left out entirely (unless `whole` is "warn"); returns one warning per model left out. */
  check(whole: "refuse" | "warn"): string[] {
    const warnings: string[] = [];
    for (const [model, t] of this.tally) {
      if (!t.first) continue;
      const { drop, tensor, numel } = t.first;
      const what = `${this.method.name} keeps none of model '${model}''s task vector`;
      if (t.dropped === t.tensors && whole === "refuse") {
        throw new ConfigError(
          drop.param,
          `${what} in any of its ${t.tensors} tensors (${drop.why}), so the merge would be the same without this model; ${drop.fix}`,
        );
      }
      warnings.push(
        `${what} in ${t.dropped} of its ${t.tensors} tensors, e.g. '${tensor}' (${numel} elements): ${drop.why}; those tensors get nothing from it, as in mergekit`,
      );
    }
    return warnings;
  }
}
