// The eval worker over the in-memory transport, on the arith-llama fixture: scores equal the
// in-process evaluator's for the same YAML and seed, outcomes land in the eval bucket before the
// ack, and broken candidates are recorded as failed without retries.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { LocalCandidateEvaluator } from "@mergeloom/coordinator/evolve";
import { MemoryTransport } from "@mergeloom/transport";
import type { EvalOutcome, EvalTask } from "@mergeloom/proto/records";
import { subjects } from "@mergeloom/proto/subjects";
import { buckets } from "@mergeloom/proto/buckets";
import { openKv } from "@mergeloom/transport";
import type { KvBucket } from "@mergeloom/transport";
import { FIXTURES } from "../harness/repo-root.js";
import type { FitnessSpec } from "@mergeloom/engine/eval";
import { EvalWorker } from "@mergeloom/worker";

const fitness: FitnessSpec = {
  graph: join(FIXTURES, "eval", "model.onnx"),
  vocab: join(FIXTURES, "base", "vocab.json"),
  batchSize: 500,
  objective: "weighted",
  tasks: [
    { name: "add", kind: "accuracy", data: join(FIXTURES, "eval", "add.jsonl"), weight: 1, limit: 40 },
    { name: "mul", kind: "accuracy", data: join(FIXTURES, "eval", "mul.jsonl"), weight: 1, limit: 40 },
    { name: "conf", kind: "entropy", data: join(FIXTURES, "eval", "sub.jsonl"), weight: 1, limit: 10 },
  ],
};

function yaml(method: string, weights: number[], extra = ""): string {
  const experts = ["expert-add", "expert-sub", "expert-mul", "expert-rev"];
  return [
    `merge_method: ${method}`,
    `base_model: ${join(FIXTURES, "base")}`,
    "models:",
    ...experts.flatMap((e, i) => [`  - model: ${join(FIXTURES, e)}`, `    parameters: { weight: ${weights[i]}${extra} }`]),
    "dtype: float32",
    "out_dtype: bfloat16",
    "",
  ].join("\n");
}

let transport: MemoryTransport;
let worker: EvalWorker;
let outcomes: KvBucket<EvalOutcome>;
const lines: string[] = [];

before(async () => {
  transport = new MemoryTransport();
  worker = new EvalWorker({ transport, name: "w1", device: "cpu", ackWaitMs: 5000, maxDeliver: 3, backoffMs: [10], log: (l) => lines.push(l) });
  await worker.start();
  outcomes = await openKv(transport, buckets.evals);
});
after(async () => {
  await worker.stop();
  await transport.close();
});

function task(taskId: string, mergeYaml: string, seed = 0): EvalTask {
  return { jobId: "search1", taskId, candidateId: taskId, mergeYaml, fitness: JSON.parse(JSON.stringify(fitness)), seed };
}

async function outcomeOf(taskId: string, timeoutMs = 60_000): Promise<EvalOutcome> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const e = await outcomes.get(buckets.evals.key("search1", taskId));
    if (e) return e.value;
    if (Date.now() > end) throw new Error(`no outcome for ${taskId}; log:\n${lines.join("\n")}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("EvalWorker", () => {
  test("scores equal the in-process evaluator's for the same YAML and merge seed", async () => {
    const cands = [
      { id: "ta", genotype: [], mergeYaml: yaml("task_arithmetic", [0.9, 0.4, 0.7, 0.2]) },
      { id: "dare", genotype: [], mergeYaml: yaml("dare_ties", [0.8, 0.8, 0.8, 0.8], ", density: 0.5") },
    ];
    const local = await LocalCandidateEvaluator.create({ fitness, mergeSeed: 5 });
    const expected = await local.evaluate(cands);
    await local.close();
    for (const c of cands) await transport.publishTask(subjects.taskEvaluate, "eval-task", task(c.id, c.mergeYaml, 5));
    for (const [i, c] of cands.entries()) {
      const o = await outcomeOf(c.id);
      assert.equal(o.ok, true, o.error?.message);
      assert.equal(o.device, "cpu");
      assert.equal(o.worker, "w1");
      assert.deepEqual(o.scores, expected[i].scores);
      assert.ok(expected[i].scores.add >= 0 && expected[i].scores.add <= 1);
    }
    assert.ok(
      lines.some((l) => /^task ta of search search1 started \(attempt 1, candidate ta\)$/.test(l)),
      lines.join("\n"),
    );
  });

  test("the same candidate under another DARE seed scores differently (the seed reaches the merge)", async () => {
    const y = yaml("dare_ties", [0.8, 0.8, 0.8, 0.8], ", density: 0.5");
    await transport.publishTask(subjects.taskEvaluate, "eval-task", task("dare-seed-6", y, 6));
    const a = await outcomeOf("dare");
    const b = await outcomeOf("dare-seed-6");
    assert.notDeepEqual(a.scores, b.scores);
  });

  test("a candidate whose YAML does not validate is recorded as failed after one attempt", async () => {
    await transport.publishTask(subjects.taskEvaluate, "eval-task", task("bad", "merge_method: no_such_method\nmodels: []\n"));
    const o = await outcomeOf("bad");
    assert.equal(o.ok, false);
    assert.equal(o.attempt, 1);
    assert.equal(o.error?.retryable, false);
    assert.match(o.error!.message, /evaluate candidate bad on worker w1 \(attempt 1\/3\)/);
  });

  test("a command fitness task is refused: workers do not run shell commands from the queue", async () => {
    const t = task("cmd", yaml("task_arithmetic", [1, 1, 1, 1]));
    t.fitness.tasks = [{ name: "lm", kind: "command", command: "echo 1", weight: 1 }];
    await transport.publishTask(subjects.taskEvaluate, "eval-task", t);
    const o = await outcomeOf("cmd");
    assert.equal(o.ok, false);
    assert.equal(o.error?.code, "EVAL_FAILED");
    assert.match(o.error!.message, /command task, which runs only in-process/);
  });

  test("with storage roots, a candidate reading models outside them fails with PATH_ESCAPE", async () => {
    const t2 = new MemoryTransport({ broker: transport.broker });
    const confined = new EvalWorker({ transport: t2, name: "w2", device: "cpu", storageRoots: ["/nonexistent-root"], maxDeliver: 1 });
    await worker.stop(); // only the confined worker takes the next task
    await confined.start();
    try {
      await transport.publishTask(subjects.taskEvaluate, "eval-task", task("escape", yaml("task_arithmetic", [1, 1, 1, 1])));
      const o = await outcomeOf("escape");
      assert.equal(o.ok, false);
      assert.equal(o.error?.code, "PATH_ESCAPE");
    } finally {
      await confined.stop();
      worker = new EvalWorker({ transport, name: "w1", device: "cpu", log: (l) => lines.push(l) });
      await worker.start();
    }
  });

  test("a redelivered task whose outcome is recorded is acked without evaluating again", async () => {
    const before = lines.filter((l) => l.includes("task ta of search")).length;
    await transport.publishTask(subjects.taskEvaluate, "eval-task", task("ta", yaml("task_arithmetic", [0.9, 0.4, 0.7, 0.2])));
    // A marker task queued behind it: once it has an outcome, the duplicate has been handled.
    await transport.publishTask(subjects.taskEvaluate, "eval-task", task("marker", "merge_method: nope\nmodels: []\n"));
    await outcomeOf("marker");
    assert.equal(lines.filter((l) => l.includes("task ta of search")).length, before);
  });
});
