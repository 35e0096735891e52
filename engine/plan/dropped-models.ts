import { ConfigError } from "../errors/index.js";
import type { MergeMethod } from "../methods/define-merge-method.js";
import type { ResolvedParams } from "../methods/params.js";

type CheckCtx = Parameters<NonNullable<MergeMethod["droppedInputs"]>>[0];

interface ModelTally {
  tensors: number;
  dropped: number;
  first?: { tensor: string; numel: number; params: ResolvedParams };
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
    const dropped = new Set(this.method.droppedInputs(ctx));
    ctx.inputs.forEach((input, i) => {
      if (i === ctx.baseIndex) return;
      const t = this.tally.get(input.model) ?? { tensors: 0, dropped: 0 };
      t.tensors++;
      if (dropped.has(i)) {
        t.dropped++;
        t.first ??= { tensor: ctx.tensorName, numel: ctx.shape.reduce((a, b) => a * b, 1), params: input.params };
      }
      this.tally.set(input.model, t);
    });
  }

  /** Throws for a model left out entirely; returns one warning per model left out of some tensors. */
  check(): string[] {
    const warnings: string[] = [];
    for (const [model, t] of this.tally) {
      if (!t.first) continue;
      const p = t.first.params;
      const why = `${this.method.name} keeps none of model '${model}''s task vector`;
      const cause = `with gamma ${p.gamma ?? 0.01} and density ${p.density}, n_top = int(gamma·numel) is 0 and mergekit's mask (the ascending |δ| order's slice [n_bot:-n_top]) is an empty Python slice`;
      if (t.dropped === t.tensors) {
        throw new ConfigError(
          "gamma",
          `${why} in any of its ${t.tensors} tensors (${cause}), so the merge would be the same without this model; ` +
            `set that model's gamma so that gamma·numel ≥ 1 (the default 0.01 does for tensors of 100 elements or more), or its density to 1`,
        );
      }
      warnings.push(
        `${why} in ${t.dropped} of its ${t.tensors} tensors, e.g. '${t.first.tensor}' (${t.first.numel} elements): ${cause}; those tensors get nothing from it, as in mergekit`,
      );
    }
    return warnings;
  }
}
