/** `mergeloom lora extract`: a PEFT LoRA adapter from a fine-tuned model and its base (mergekit-extract-lora). */
import type { Command } from "commander";
import { MergeloomError } from "@mergeloom/proto/errors";
import { extractLora, type ExtractedTensor } from "../lora/extract-lora.js";
import { parseIntFlag } from "./parse-size.js";

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerLoraCommand(program: Command): void {
  const lora = program.command("lora").description("LoRA adapters");
  lora
    .command("extract")
    .description("write a PEFT LoRA adapter approximating FINETUNED − BASE by a truncated SVD of each weight's delta (mergekit-extract-lora)")
    .argument("<finetuned>", "fine-tuned model")
    .requiredOption("--base <model>", "model it was fine-tuned from")
    .requiredOption("-r, --rank <n>", "maximum LoRA rank (mergekit's --max-rank)")
    .requiredOption("-o, --output <dir>", "adapter directory to write")
    .option("--save-module <name>", "save this module at full rank (repeatable)", collect, [])
    .option("-i, --include-regex <re>", "only decompose modules matching (repeatable)", collect, [])
    .option("-e, --exclude-regex <re>", "do not decompose modules matching (repeatable)", collect, [])
    .option("--sv-epsilon <x>", "drop singular values at or below x", "0")
    .option("--no-distribute-scale", "A = S·Vᵀ, B = U instead of splitting √S between them")
    .option("--skip-undecomposable", "skip modules without a 2-D weight instead of saving them whole")
    .option("--power-iterations <n>", "subspace iterations of the randomized SVD", "2")
    .option("--oversample <n>", "extra columns of the randomized SVD", "10")
    .option("--overwrite", "replace the output if it exists")
    .option("--json", "print the report as JSON")
    .action(
      async (
        finetuned: string,
        f: {
          base: string;
          rank: string;
          output: string;
          saveModule: string[];
          includeRegex: string[];
          excludeRegex: string[];
          svEpsilon: string;
          distributeScale: boolean;
          skipUndecomposable?: boolean;
          powerIterations: string;
          oversample: string;
          overwrite?: boolean;
          json?: boolean;
        },
      ) => {
        const svEpsilon = Number(f.svEpsilon);
        if (!Number.isFinite(svEpsilon) || svEpsilon < 0) throw new MergeloomError("USAGE", `--sv-epsilon: expected a number ≥ 0, got '${f.svEpsilon}'`);
        const line = (t: ExtractedTensor) =>
          t.kind === "lora" ? `  ${t.name}: rank ${t.rank}, relative error ${t.relError!.toExponential(3)}` : `  ${t.name}: saved whole (modules_to_save)`;
        const report = await extractLora({
          finetuned,
          base: f.base,
          out: f.output,
          rank: parseIntFlag(f.rank, "--rank", 1),
          saveModules: f.saveModule,
          includeRegexes: f.includeRegex,
          excludeRegexes: f.excludeRegex,
          svEpsilon,
          distributeScale: f.distributeScale,
          skipUndecomposable: f.skipUndecomposable,
          powerIterations: parseIntFlag(f.powerIterations, "--power-iterations"),
          oversample: parseIntFlag(f.oversample, "--oversample"),
          overwrite: f.overwrite,
          onTensor: f.json ? undefined : (t) => process.stderr.write(line(t) + "\n"),
          onWarning: (m) => process.stderr.write(`warning: ${m}\n`),
        });
        if (f.json) process.stdout.write(JSON.stringify({ out: f.output, ...report }) + "\n");
        else process.stderr.write(`wrote ${f.output}: rank ${report.maxRank}, relative Frobenius error of the deltas ${report.relError.toExponential(3)}\n`);
      },
    );
}
