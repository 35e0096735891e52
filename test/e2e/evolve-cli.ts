// A CLI entry with just `evolve` and `merge` registered, for the evolve e2e tests (run under tsx,
// so they need no build and no change to the main CLI).
import { Command } from "commander";
import { errorMessage } from "@mergeloom/proto/errors";
import { registerEvolveCommand } from "@mergeloom/coordinator/cli";
import { registerMergeCommands } from "@mergeloom/coordinator/cli";
import { registerEvalCommand } from "@mergeloom/coordinator/cli";

const program = new Command("mergeloom").exitOverride();
registerEvolveCommand(program);
registerMergeCommands(program);
registerEvalCommand(program);
try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.stderr.write(`mergeloom: ${errorMessage(err)}\n`);
  process.exit(1);
}
