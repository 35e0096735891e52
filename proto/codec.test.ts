import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { Packr } from "msgpackr";
import { decodeMessage, encodeMessage, MAX_MESSAGE_BYTES } from "./codec.js";
import { ProtocolError } from "./errors.js";
import type { MergeTask } from "./merge-task.js";

const task: MergeTask = {
  jobId: "job-1",
  taskId: "t-7",
  seed: 2 ** 40 + 3,
  tensors: [
    {
      name: "model.layers.0.mlp.down_proj.weight",
      shape: [4, 8],
      outDtype: "BF16",
      method: "ties",
      params: { density: 0.5, normalize: true, tag: "x" },
      inputs: [
        {
          model: "a",
          source: { uri: "/m/a.safetensors", offset: 128, byteLength: 64, dtype: "BF16", shape: [4, 8], tensor: "w" },
          params: { weight: 0.3 },
          addVectors: [{ source: { uri: "/m/v.safetensors", offset: 0, byteLength: 64, dtype: "BF16", shape: [4, 8], tensor: "w" }, scale: -1 }],
        },
      ],
      baseIndex: -1,
      dest: { uri: "file:///out/shard-1", offset: 0, byteLength: 64 },
    },
  ],
};
const raw = new Packr({ useRecords: false, mapsAsObjects: true });

function protocolError(code: string, re: RegExp) {
  return (err: unknown) => err instanceof ProtocolError && err.code === code && re.test(err.message) && !err.retryable;
}

describe("codec", () => {
  test("a merge task survives encode and decode unchanged, including a seed above 2^32", () => {
    const msg = decodeMessage(encodeMessage("merge-task", task), { expect: "merge-task" });
    assert.equal(msg.kind, "merge-task");
    assert.deepEqual(msg.body, task);
  });

  test("the envelope carries protocol version 1, the kind and the body", () => {
    const env = raw.unpack(encodeMessage("merge-result", { taskId: "t", tensors: [], bytesRead: 1, bytesWritten: 2, durationMs: 3 }));
    assert.equal(env.v, 1);
    assert.equal(env.kind, "merge-result");
    assert.equal(env.body.bytesWritten, 2);
  });

  test("a message from a newer protocol version names both versions and the fix", () => {
    const bytes = raw.pack({ v: 2, kind: "merge-task", body: task });
    assert.throws(
      () => decodeMessage(bytes, { role: "coordinator" }),
      protocolError("PROTOCOL_MISMATCH", /coordinator speaks v1, worker speaks v2; run the same mergeloom version on both/),
    );
    assert.throws(() => decodeMessage(bytes, { role: "worker" }), protocolError("PROTOCOL_MISMATCH", /worker speaks v1, coordinator speaks v2/));
  });

  test("an oversized message is rejected before it is parsed", () => {
    // Not msgpack at all: if the parser ran first the error would say so.
    const junk = new Uint8Array(MAX_MESSAGE_BYTES + 1).fill(0xc1);
    assert.throws(() => decodeMessage(junk), protocolError("MESSAGE_INVALID", /1048577 bytes, over the 1048576-byte limit/));
    assert.throws(() => decodeMessage(new Uint8Array(101).fill(0xc1), { maxBytes: 100 }), protocolError("MESSAGE_INVALID", /over the 100-byte limit/));
  });

  test("encoding a message over the limit fails at the sender", () => {
    const big = { ...task, tensors: [{ ...task.tensors[0], name: "x".repeat(2000) }] };
    assert.throws(
      () => encodeMessage("merge-task", big, { maxBytes: 1000, subject: "s.t" }),
      protocolError("MESSAGE_INVALID", /encode merge-task on s\.t: message is \d+ bytes/),
    );
  });

  test("a malformed body names the offending field", () => {
    const bad = structuredClone(task) as unknown as { tensors: Array<{ shape: unknown[] }> };
    bad.tensors[0].shape[1] = "8";
    assert.throws(
      () => decodeMessage(raw.pack({ v: 1, kind: "merge-task", body: bad }), { subject: "mergeloom.v1.task.merge" }),
      protocolError("MESSAGE_INVALID", /decode merge-task on mergeloom\.v1\.task\.merge: field body\.tensors\[0\]\.shape\[1\]: .*number/),
    );
    const noSeed: Partial<MergeTask> = { ...task };
    delete noSeed.seed;
    assert.throws(() => decodeMessage(raw.pack({ v: 1, kind: "merge-task", body: noSeed })), protocolError("MESSAGE_INVALID", /field body\.seed/));
  });

  test("unknown kinds, unexpected kinds, missing envelopes and non-msgpack bytes are rejected", () => {
    assert.throws(
      () => decodeMessage(raw.pack({ v: 1, kind: "frob", body: {} })),
      protocolError("MESSAGE_INVALID", /unknown message kind 'frob' \(known: merge-task, merge-result/),
    );
    assert.throws(
      () => decodeMessage(encodeMessage("merge-task", task), { expect: ["merge-result", "error-report"] }),
      protocolError("MESSAGE_INVALID", /got 'merge-task', expected merge-result or error-report/),
    );
    assert.throws(() => decodeMessage(raw.pack([1, 2])), protocolError("MESSAGE_INVALID", /field v: missing envelope/));
    assert.throws(() => decodeMessage(new Uint8Array([0x83, 0xa1])), protocolError("MESSAGE_INVALID", /not valid msgpack/));
  });

  test("an error report's wire error only accepts known codes", () => {
    const report = { jobId: "j", taskId: "t", attempt: 2, final: true, error: { code: "SHAPE_MISMATCH", message: "m", retryable: false } } as const;
    assert.deepEqual(decodeMessage(encodeMessage("error-report", report)).body, report);
    const bad = { ...report, error: { ...report.error, code: "NOPE" } };
    assert.throws(() => decodeMessage(raw.pack({ v: 1, kind: "error-report", body: bad })), protocolError("MESSAGE_INVALID", /field body\.error\.code/));
  });
});
