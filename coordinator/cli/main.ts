#!/usr/bin/env node
/**
 * The mergeloom command line. Every command fails with a one-line error and a non-zero exit code;
 * it is the only place (with the worker entry) that reads the environment.
 */
import { Command, Option } from "commander";
import { MergeloomError, errorMessage } from "@mergeloom/proto/errors";
import { capEchoes } from "@mergeloom/proto/cap-echoes";
import { redactUrls } from "@mergeloom/transport";
import { parseIntFlag, parseSize } from "./parse-size.js";
import { registerMergeCommands } from "./merge-commands.js";
import { registerEvalCommand } from "./eval-command.js";
import { registerClusterCommands } from "./cluster-commands.js";
import { registerEvolveCommand } from "./evolve-command.js";
import { registerDownloadCommand } from "./download-command.js";
import { registerLoraCommand } from "./lora-command.js";
import { startTelemetry } from "../telemetry/start-telemetry.js";

export function buildProgram(): Command {
  const program = new Command("mergeloom")
    .description("Merge LLM checkpoints with mergekit's configs and numerics — locally or across a NATS cluster")
    .version("0.1.0")
    .showHelpAfterError("(run with --help for usage)")
    .option("--trace-file <file>", "append finished OpenTelemetry spans to FILE as JSON lines (OTLP export: set OTEL_EXPORTER_OTLP_ENDPOINT)");
  registerMergeCommands(program);
  registerEvalCommand(program);
  registerClusterCommands(program);
  registerEvolveCommand(program);
  registerDownloadCommand(program);
  registerLoraCommand(program);
  return program;
}

export { parseIntFlag, parseSize, Option };

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  let telemetry: { shutdown(): Promise<void> } | undefined;
  // Only the entry point starts the OpenTelemetry SDK; library code uses @opentelemetry/api alone.
  program.hook("preAction", async (_root, action) => {
    const traceFile = program.opts<{ traceFile?: string }>().traceFile;
    const service = action.name() === "worker" ? "mergeloom-worker" : "mergeloom-coordinator";
    telemetry = await startTelemetry({ serviceName: service, traceFile });
  });
  try {
    await program.parseAsync(argv);
    await telemetry?.shutdown();
  } catch (err) {
    await telemetry?.shutdown().catch(() => {});
    const e = err as { code?: string; exitCode?: number };
    if (typeof e.code === "string" && e.code.startsWith("commander.")) {
      process.exit(e.exitCode ?? 2);
    }
    // Never print URL credentials (`nats://user:password@host`), whatever the error quoted.
    const msg = redactUrls(capEchoes(errorMessage(err).split("\n")[0]));
    process.stderr.write(`mergeloom: ${msg}\n`);
    if (process.env.MERGELOOM_DEBUG && err instanceof Error) process.stderr.write(`${redactUrls(err.stack ?? "")}\n`);
    // An interrupted merge exits 128 + signal number, as a shell reports a process killed by it.
    const exitCode = (err as { exitCode?: unknown }).exitCode;
    process.exit(typeof exitCode === "number" ? exitCode : err instanceof MergeloomError && err.code === "USAGE" ? 2 : 1);
  }
}

await main(process.argv);
