// Public entry point of @mergeloom/coordinator/cli: what other packages may import.
export { registerEvalCommand } from "./eval-command.js";
export { registerEvolveCommand } from "./evolve-command.js";
export { registerMergeCommands } from "./merge-commands.js";
