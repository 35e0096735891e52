/** `mergeloom eval`: exact-match accuracy of a checkpoint through an ONNX graph that takes its weights as inputs. */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Command } from "commander";
import { MergeloomError } from "@mergeloom/proto/errors";
import { evaluateModelDir } from "@mergeloom/engine/eval";
import { loadWeightsF32 } from "@mergeloom/engine/eval";
import { parseIntFlag } from "./parse-size.js";

export interface EvalReport {
  model: string;
  device: string;
  tasks: { name: string; correct: number; total: number; accuracy: number }[];
  mean: number;
}

export async function evaluateCheckpoint(
  model: string,
  opts: { onnx: string; data: string[]; vocab?: string; batchSize?: number; device?: "cpu" | "cuda" | "auto" },
): Promise<EvalReport> {
  const vocab = opts.vocab ?? [join(model, "vocab.json"), join(dirname(opts.onnx), "vocab.json")].find((p) => existsSync(p));
  if (!vocab) throw new MergeloomError("USAGE", `eval ${model}: no vocab.json in the model directory; pass --vocab`);
  const weights = await loadWeightsF32(model);
  const r = await evaluateModelDir({ weights, graphPath: opts.onnx, dataFiles: opts.data, vocabPath: vocab, batchSize: opts.batchSize, device: opts.device });
  return { model, ...r };
}

export function registerEvalCommand(program: Command): void {
  program
    .command("eval")
    .description("score a model directory with an ONNX graph that takes the weights as inputs (exact match per data file)")
    .argument("<model>", "model directory (safetensors)")
    .requiredOption("--onnx <graph>", "ONNX evaluation graph")
    .requiredOption("--data <files>", "comma-separated JSONL files of {prompt, answer}")
    .option("--vocab <file>", "vocab.json of the character tokenizer (default: the model's)")
    .option("--batch-size <n>", "examples per batch", "250")
    .option("--device <d>", "cpu, cuda or auto (CUDA when onnxruntime offers it)", "auto")
    .option("--json", "print the report as JSON")
    .action(async (model: string, flags: { onnx: string; data: string; vocab?: string; batchSize: string; device: string; json?: boolean }) => {
      if (!["cpu", "cuda", "auto"].includes(flags.device)) throw new MergeloomError("USAGE", `--device: '${flags.device}' is not one of cpu, cuda, auto`);
      const r = await evaluateCheckpoint(model, {
        onnx: flags.onnx,
        data: flags.data.split(",").filter(Boolean),
        vocab: flags.vocab,
        batchSize: parseIntFlag(flags.batchSize, "--batch-size", 1),
        device: flags.device as "cpu" | "cuda" | "auto",
      });
      if (flags.json) {
        process.stdout.write(JSON.stringify(r) + "\n");
        return;
      }
      process.stdout.write(`model ${model} (${r.device})\n`);
      for (const t of r.tasks) process.stdout.write(`  ${t.name.padEnd(10)} ${(t.accuracy * 100).toFixed(1).padStart(5)}%  (${t.correct}/${t.total})\n`);
      process.stdout.write(`  ${"mean".padEnd(10)} ${(r.mean * 100).toFixed(1).padStart(5)}%\n`);
    });
}
