/**
 * Issue 9 items 17 and 2 over NATS, with a real nats-server and real coordinator processes: a
 * second coordinator on an output that a live coordinator's job (in the jobs bucket) is writing
 * fails up front naming that run; once the first is dead its job no longer blocks; and an output
 * overlapping an input is refused before any task is published.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { type NatsServerHandle } from "../harness/nats-server.js";
import { FIXTURES } from "../harness/repo-root.js";
import { startCoordinator, startWorker, uniquePrefix, natsClusterFixture } from "../harness/cluster.js";

let server: NatsServerHandle;
let dir: string;
const { track } = natsClusterFixture("mergeloom-conflict-", (s, d) => ((server = s), (dir = d)));

const yaml = (weight: number) =>
  `merge_method: linear\nmodels:\n  - model: ${FIXTURES}/expert-add\n    parameters: { weight: ${weight} }\n  - model: ${FIXTURES}/expert-sub\n    parameters: { weight: 0.5 }\n`;

describe("two coordinators on one output", () => {
  test("the second fails naming the live first run and its job; after the first dies the output is free again", { timeout: 90_000 }, async () => {
    const prefix = uniquePrefix();
    const out = join(dir, "shared-out");
    const cfg1 = join(dir, "one.yml");
    const cfg2 = join(dir, "two.yml");
    await writeFile(cfg1, yaml(0.5));
    await writeFile(cfg2, yaml(0.25));
    // No worker yet: the first coordinator plans, records its job and waits.
    const first = track(startCoordinator(server.url, prefix, cfg1, out));
    await first.waitFor(() => first.events().some((e) => e.type === "plan"), 30_000, "plan");
    const jobId = String(first.events().find((e) => e.type === "plan")!.jobId);

    const second = track(startCoordinator(server.url, prefix, cfg2, out));
    const code = await second.exited;
    assert.equal(code, 1, second.err);
    const line = second.err.trim().split("\n").pop()!;
    assert.equal(
      line,
      `mergeloom: write output ${out}: another mergeloom run (pid ${first.child.pid} on host ${hostname()}) is writing ${out} (job ${jobId}); wait for it to finish or cancel it with mergeloom cancel ${jobId}`,
    );

    await first.kill("SIGKILL");
    const w = track(startWorker(server.url, { name: "w", prefix }));
    const third = track(startCoordinator(server.url, prefix, cfg2, out));
    assert.equal(await third.exited, 0, third.err);
    assert.ok(existsSync(join(out, "model.safetensors")));
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith("shared-out")),
      ["shared-out"],
      "the dead run's temp dir and lock are gone",
    );
    await w.kill("SIGTERM");
  });

  test("with --nats an output inside an input is refused at plan time, before any task is published", { timeout: 60_000 }, async () => {
    const prefix = uniquePrefix();
    const cfg = join(dir, "overlap.yml");
    await writeFile(cfg, yaml(0.5));
    const out = join(FIXTURES, "expert-add", "merged");
    const c = track(startCoordinator(server.url, prefix, cfg, out));
    assert.equal(await c.exited, 1, c.err);
    assert.match(
      c.err.trim().split("\n").pop()!,
      new RegExp(`^mergeloom: plan output ${out}: the output is inside input '${FIXTURES}/expert-add' \\(${FIXTURES}/expert-add\\)`),
    );
    assert.equal(
      c.events().some((e) => e.type === "plan"),
      false,
    );
    assert.equal(existsSync(out), false);
  });
});
