// NatsCandidateEvaluator over the in-memory transport with a real EvalWorker: results match the
// in-process evaluator, come back in candidate order, recorded outcomes are reused on resume and
// forgotten for a fresh search.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { MemoryTransport } from "@mergeloom/transport";
import type { EvalOutcome } from "@mergeloom/proto/records";
import { consumers, subjects } from "@mergeloom/proto/subjects";
import { buckets } from "@mergeloom/proto/buckets";
import { openKv } from "@mergeloom/transport";
import type { KvBucket } from "@mergeloom/transport";
import { FIXTURES } from "../harness/repo-root.js";
import type { FitnessSpec } from "@mergeloom/engine/eval";
import { EvalWorker } from "@mergeloom/worker";
import type { Candidate } from "@mergeloom/coordinator/evolve";
import { LocalCandidateEvaluator } from "@mergeloom/coordinator/evolve";
import { deriveSearchId, evalTaskId, NatsCandidateEvaluator } from "@mergeloom/coordinator/evolve";

const fitness: FitnessSpec = {
  graph: join(FIXTURES, "eval", "model.onnx"),
  vocab: join(FIXTURES, "base", "vocab.json"),
  batchSize: 500,
  objective: "weighted",
  tasks: [
    { name: "add", kind: "accuracy", data: join(FIXTURES, "eval", "add.jsonl"), weight: 1, limit: 40 },
    { name: "rev", kind: "accuracy", data: join(FIXTURES, "eval", "rev.jsonl"), weight: 3, limit: 40 },
  ],
};

function cand(id: string, w: number[]): Candidate {
  const experts = ["expert-add", "expert-sub", "expert-mul", "expert-rev"];
  const mergeYaml = [
    "merge_method: task_arithmetic",
    `base_model: ${join(FIXTURES, "base")}`,
    "models:",
    ...experts.flatMap((e, i) => [`  - model: ${join(FIXTURES, e)}`, `    parameters: { weight: ${w[i]} }`]),
    "dtype: float32",
    "out_dtype: bfloat16",
    "",
  ].join("\n");
  return { id, genotype: w, mergeYaml };
}

let transport: MemoryTransport;
let worker: EvalWorker;
let outcomes: KvBucket<EvalOutcome>;
const started: string[] = [];

before(async () => {
  transport = new MemoryTransport();
  worker = new EvalWorker({
    transport: new MemoryTransport({ broker: transport.broker }),
    name: "w",
    device: "cpu",
    concurrency: 2,
    log: (l) => started.push(l),
  });
  await worker.start();
  outcomes = await openKv(transport, buckets.evals);
});
after(async () => {
  await worker.stop();
  await transport.close();
});

describe("NatsCandidateEvaluator", () => {
  test("returns the in-process evaluator's results, in candidate order, with the weighted fitness", async () => {
    const cands = [cand("g0-c0", [1, 0.2, 0.3, 0.9]), cand("g0-c1", [0.5, 0.5, 0.5, 0.5]), cand("base line", [0, 0, 0, 1])];
    const local = await LocalCandidateEvaluator.create({ fitness });
    const expected = await local.evaluate(cands);
    await local.close();
    const ev = await NatsCandidateEvaluator.create({ transport, fitness, searchId: "s-order" });
    const got = await ev.evaluate(cands);
    await ev.close();
    assert.deepEqual(got, expected);
    // The weighted mean by hand: (1·add + 3·rev) / 4.
    assert.equal(got[0].fitness, (got[0].scores.add + 3 * got[0].scores.rev) / 4);
  });

  test("a resumed search reuses recorded outcomes and publishes only the missing candidates", async () => {
    const cands = [cand("g1-c0", [0.3, 0.3, 0.3, 0.3]), cand("g1-c1", [0.9, 0.1, 0.1, 0.1])];
    // As if an earlier run had recorded c0 (with scores no real evaluation gives) before it died.
    const key = buckets.evals.key("s-resume", evalTaskId(cands[0]));
    await outcomes.put(key, {
      jobId: "s-resume",
      taskId: evalTaskId(cands[0]),
      candidateId: "g1-c0",
      ok: true,
      scores: { add: 0.125, rev: 0.375 },
      worker: "old",
      attempt: 1,
      durationMs: 1,
      finishedAt: Date.now(),
    });
    const n = started.length;
    const ev = await NatsCandidateEvaluator.create({ transport, fitness, searchId: "s-resume" });
    const got = await ev.evaluate(cands);
    assert.deepEqual(got[0].scores, { add: 0.125, rev: 0.375 });
    assert.equal(got[0].fitness, (0.125 + 3 * 0.375) / 4);
    const newStarts = started.slice(n).filter((l) => / started /.test(l));
    assert.deepEqual(
      newStarts.map((l) => / candidate (\S+)\)$/.exec(l)?.[1]),
      ["g1-c1"],
    );

    // A fresh search under the same id forgets them and evaluates both.
    const fresh = await NatsCandidateEvaluator.create({ transport, fitness, searchId: "s-resume", fresh: true });
    const again = await fresh.evaluate(cands);
    assert.notDeepEqual(again[0].scores, { add: 0.125, rev: 0.375 });
    assert.deepEqual(again[1], got[1]);
  });

  test("a candidate that fails on the worker ranks last with its error instead of failing the search", async () => {
    const bad: Candidate = { id: "broken", genotype: [], mergeYaml: "merge_method: slerp_typo\nmodels: []\n" };
    const ev = await NatsCandidateEvaluator.create({ transport, fitness, searchId: "s-fail" });
    const [r] = await ev.evaluate([bad]);
    assert.ok(Number.isNaN(r.fitness));
    assert.deepEqual(r.scores, {});
    assert.match(r.error!, /evaluate candidate broken on worker w/);
  });

  test("command fitness tasks are refused up front with a usage error", async () => {
    const spec: FitnessSpec = { ...fitness, tasks: [{ name: "lm", kind: "command", command: "echo 1", weight: 1 }] };
    await assert.rejects(
      NatsCandidateEvaluator.create({ transport, fitness: spec, searchId: "s-cmd" }),
      (e: Error & { code?: string }) => e.code === "USAGE" && /run the search without --nats/.test(e.message),
    );
  });

  test("an aborted evaluation rejects with the abort reason", async () => {
    const ev = await NatsCandidateEvaluator.create({ transport, fitness, searchId: "s-abort" });
    const ac = new AbortController();
    const p = ev.evaluate([cand("g0-c0", [0.1, 0.2, 0.3, 0.4])], ac.signal);
    ac.abort(new Error("stop now"));
    await assert.rejects(p, /stop now/);
  });

  test("task ids are token-safe and differ when the candidate's YAML differs", () => {
    const a = evalTaskId({ id: "task_arithmetic lambda 0.3", mergeYaml: "x" });
    assert.match(a, /^task_arithmetic_lambda_0_3-[0-9a-f]{12}$/);
    assert.notEqual(evalTaskId({ id: "g0-c0", mergeYaml: "x" }), evalTaskId({ id: "g0-c0", mergeYaml: "y" }));
    assert.match(deriveSearchId("a", "b"), /^evolve-[0-9a-f]{16}$/);
    assert.notEqual(deriveSearchId("a", "b"), deriveSearchId("a", "c"));
  });

  test("a candidate every worker dropped (crashed on it each time) comes back failed instead of stalling the generation", async () => {
    const own = new MemoryTransport();
    const crashing = new MemoryTransport({ broker: own.broker });
    let taken = 0;
    const never = (signal: AbortSignal) => new Promise<void>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
    await crashing.consume(subjects.taskEvaluate, "eval-task", (d) => (taken++, never(d.signal)), {
      ackWaitMs: 100,
      maxDeliver: 2,
      durable: consumers.evalWorkers,
    });
    const ev = await NatsCandidateEvaluator.create({ transport: own, fitness, searchId: "s-dropped" });
    // the in-memory broker's lease timers are unref'd (a NATS connection would keep the process alive)
    const alive = setInterval(() => {}, 1000);
    const [r] = await ev.evaluate([cand("g0-c0", [0.5, 0.5, 0.5, 0.5])]).finally(() => clearInterval(alive));
    assert.equal(taken, 2);
    assert.ok(Number.isNaN(r.fitness));
    assert.match(r.error ?? "", /candidate g0-c0 was given up after 2 deliveries: every worker that took it stopped or lost its lease/);
    await crashing.close();
    await own.close();
  });
});
