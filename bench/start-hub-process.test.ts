import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { repoRoot } from "./make-synthetic-checkpoints.js";
import { startHubProcess } from "./start-hub-process.js";

test("the test Hub in its own process serves the commits added over IPC, counts its requests, and exits on close", async () => {
  const hub = await startHubProcess({ serveFromMemory: true });
  try {
    const sha = await hub.addCommit("t/base", join(repoRoot(), "fixtures", "arith-llama", "base"));
    const res = await fetch(`${hub.url}/api/models/t/base/revision/main`);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { sha: string }).sha, sha);
    assert.ok((await hub.counters()).requests >= 1);
    await hub.resetCounters();
    assert.equal((await hub.counters()).requests, 0);
    await assert.rejects(hub.addCommit("t/none", join(repoRoot(), "no-such-dir")), /test Hub process: .*no-such-dir/);
  } finally {
    await hub.close();
  }
  await assert.rejects(fetch(`${hub.url}/api/models/t/base/revision/main`), "the server is gone");
});
