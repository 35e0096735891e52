#!/usr/bin/env node
// `mergekit-yaml CONFIG OUT [options]` runs `mergeloom merge CONFIG OUT [options]`, so scripts
// written for mergekit run unchanged (mergekit-yaml's options are accepted by `mergeloom merge`).
process.argv.splice(2, 0, "merge");
import("@mergeloom/coordinator/main").catch((err) => {
  if (err && err.code === "ERR_MODULE_NOT_FOUND" && String(err.message).includes("coordinator/dist")) {
    console.error("mergekit-yaml (mergeloom): not built yet; run `npm run build` in the repository first");
    process.exit(2);
  }
  throw err;
});
