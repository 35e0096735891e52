// Merge threads must load their ES modules through `import()`, never through a synchronous
// `require()` of ESM: a thread terminated mid-way through the synchronous load aborts the process
// (see tensor-thread-entry.cts). Piscina `require()`s the pool's file first, so that file must be
// CommonJS that hands back a promise of the handler.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

test("the pool's thread file is CommonJS whose export is a promise of the merge handler", async () => {
  const src = readFileSync(fileURLToPath(new URL("./run-merge-task.js", import.meta.url)), "utf8");
  const file = /new URL\("(\.\/[^"]+)", import\.meta\.url\)/.exec(src)?.[1];
  assert.equal(file, "./tensor-thread-entry.cjs", "the pool loads the CommonJS entry");
  const exported: unknown = createRequire(import.meta.url)(file);
  assert.ok(exported instanceof Promise, "require() returns a promise: nothing was loaded synchronously");
  const handler = await exported;
  assert.equal(typeof handler, "function");
  const reply = await (handler as (j: unknown) => Promise<{ ok: boolean; error?: { code: string } }>)({});
  assert.equal(reply.ok, false);
  assert.equal(reply.error?.code, "MERGE_FAILED", "the handler is the merge thread's: a bad job comes back as a wire error");
});
