#!/usr/bin/env node
// Thin launcher: the CLI is compiled to coordinator/dist/ by `npm run build`.
import("@mergeloom/coordinator/main").catch((err) => {
  if (err && err.code === "ERR_MODULE_NOT_FOUND" && String(err.message).includes("coordinator/dist")) {
    console.error("mergeloom: not built yet; run `npm run build` in the repository first");
    process.exit(2);
  }
  throw err;
});
