/**
 * A merge thread holds two Hub jobs at once (one merging, the next fetching), and piscina aborts a
 * running job by terminating its thread. A job of another task that shared the thread must then be
 * sent again and finish with the right bytes — not fail because a neighbour was cancelled.
 *
 * Against the test Hub: task A's model answers 503 (its job stays in its retries, on the thread),
 * task B's model is served; once the server sees B's bytes requested, B's job is on the same
 * thread, and A is aborted.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseMergeConfig } from "@mergeloom/engine/config";
import { planMerge } from "@mergeloom/engine/job";
import { buildTasks } from "@mergeloom/engine/plan";
import { createDefaultRegistry } from "@mergeloom/engine/methods";
import { LocalMergeExecutor } from "@mergeloom/engine/driver";
import { configureHub, hubSettingsFromEnv } from "@mergeloom/engine/storage";
import type { MergeTask, MergeTaskResult } from "@mergeloom/proto/merge-task";
import { FIXTURES } from "../harness/repo-root.js";
import { startTestHub, type TestHub } from "../harness/hub-server.js";
import { until } from "../harness/until.js";

let dir: string;
let hub: TestHub;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mergeloom-resubmit-"));
  hub = await startTestHub();
  for (const m of ["base", "expert-add"]) {
    await hub.addCommit(`slow/${m}`, join(FIXTURES, m));
    await hub.addCommit(`fast/${m}`, join(FIXTURES, m));
  }
  // Threads copy process.env when they start: they see the same Hub, with retries that outlast the test.
  Object.assign(process.env, {
    HF_ENDPOINT: hub.url,
    HF_HUB_CACHE: join(dir, "empty-cache"),
    HF_TOKEN: "",
    MERGELOOM_HUB_RETRIES: "10000",
    MERGELOOM_HUB_RETRY_DELAY_MS: "20",
  });
  configureHub(hubSettingsFromEnv(process.env));
});
after(async () => {
  configureHub(undefined);
  await hub.close();
  await rm(dir, { recursive: true, force: true });
});

async function tasksOf(org: string): Promise<MergeTask[]> {
  const yaml = `merge_method: linear\nmodels:\n  - model: ${org}/base\n    parameters: { weight: 0.5 }\n  - model: ${org}/expert-add\n    parameters: { weight: 0.5 }\ndtype: float32\n`;
  const plan = await planMerge(parseMergeConfig(yaml, join(dir, `${org}.yml`), createDefaultRegistry()));
  return buildTasks(plan, { jobId: org, seed: 0, maxShardBytes: 1e9, outDir: "discard://" }).tasks;
}

const digests = (r: MergeTaskResult) => Object.fromEntries(r.tensors.map((t) => [t.name, t.sha256]));

test("aborting a job terminates its thread; the other task's job held there is resubmitted and its bytes are right", async () => {
  const slow = await tasksOf("slow");
  const fast = await tasksOf("fast");
  // One single-tensor task of A (its thread holds only that job of A), and B's first task.
  const a = slow.find((t) => t.tensors.length === 1) ?? { ...slow[0], tensors: [slow[0].tensors[0]] };
  const b = fast.reduce((x, y) => (y.tensors.length > x.tensors.length ? y : x));
  assert.ok(b.tensors.length >= 2, "B has a job to merge and one to hold");

  const clean = new LocalMergeExecutor({ threads: 1 });
  let expected: Record<string, string | undefined>;
  try {
    expected = digests(await clean.run(b));
  } finally {
    await clean.close();
  }
  assert.ok(Object.values(expected).every((d) => typeof d === "string" && d.length === 64));

  hub.faults.failPaths = ["/slow/"];
  const ex = new LocalMergeExecutor({ threads: 1 });
  try {
    const abortA = new AbortController();
    hub.hits.clear();
    // Both submitted before the thread is up: when it is ready, it takes A's job and then B's first.
    const runA = ex.run(a, { signal: abortA.signal });
    const runB = ex.run(b, { signal: new AbortController().signal });
    const fastBytes = () => [...hub.hits.keys()].some((k) => k.includes("/lfs/") || k.includes("/fast/"));
    await until(fastBytes, 20_000, "the thread to fetch B's inputs while A's job retries");
    const slowTries = [...hub.hits.entries()].filter(([k]) => k.includes("/slow/")).reduce((n, [, c]) => n + c, 0);
    assert.ok(slowTries > 0, "A's job is on the thread, retrying its 503s");
    abortA.abort();
    await assert.rejects(runA, (e: Error & { code?: string }) => e.code === "CANCELLED");
    hub.faults.failPaths = [];
    const got = await runB;
    assert.deepEqual(digests(got), expected, "B's tensors, merged on the replacement thread, match a clean run");
  } finally {
    hub.faults.failPaths = [];
    await ex.close();
  }
});
