import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { CheckpointError } from "../errors/index.js";
import { buildSafetensorsHeader, parseSafetensorsHeader } from "./safetensors.js";

/** Header JSON bytes and the file size for a data section of `dataBytes` bytes. */
function header(entries: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>, dataBytes: number) {
  const json = new TextEncoder().encode(JSON.stringify(entries));
  return { json, fileSize: 8 + json.byteLength + dataBytes };
}

function expectRefused(entries: Parameters<typeof header>[0], dataBytes: number, pattern: RegExp): void {
  const { json, fileSize } = header(entries, dataBytes);
  assert.throws(
    () => parseSafetensorsHeader("m.safetensors", json, fileSize),
    (err: unknown) => err instanceof CheckpointError && err.code === "CHECKPOINT_INVALID" && pattern.test(err.message) && err.message.includes("m.safetensors"),
  );
}

describe("safetensors offsets must tile the data section as the reference implementation requires", () => {
  test("a zero-length tensor sorted between two overlapping tensors does not hide the overlap", () => {
    expectRefused(
      {
        a: { dtype: "F32", shape: [4], data_offsets: [0, 16] },
        z: { dtype: "F32", shape: [0], data_offsets: [8, 8] },
        b: { dtype: "F32", shape: [4], data_offsets: [8, 24] },
      },
      24,
      /'a' and '(z|b)' overlap/,
    );
  });

  test("a hole between tensors is refused", () => {
    expectRefused(
      { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [12, 20] } },
      20,
      /bytes 8-12 before tensor 'b' belong to no tensor/,
    );
  });

  test("data that does not start at byte 0 is refused", () => {
    expectRefused({ a: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, 12, /bytes 0-4 before tensor 'a'/);
  });

  test("bytes after the last tensor are refused", () => {
    expectRefused({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, 9, /1 bytes after the last tensor/);
  });

  test("two tensors with the same range are refused", () => {
    expectRefused({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, 8, /overlap/);
  });

  test("zero-length tensors anywhere in a contiguous layout, in any key order, are accepted", () => {
    const { json, fileSize } = header(
      {
        b: { dtype: "BF16", shape: [3], data_offsets: [8, 14] },
        e0: { dtype: "F32", shape: [0, 5], data_offsets: [0, 0] },
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        e1: { dtype: "I8", shape: [0], data_offsets: [8, 8] },
        e2: { dtype: "F16", shape: [0], data_offsets: [14, 14] },
      },
      14,
    );
    const h = parseSafetensorsHeader("m.safetensors", json, fileSize);
    assert.equal(h.tensors.size, 5);
    assert.equal(h.tensors.get("b")!.offset, 8 + json.byteLength + 8);
  });

  test("a header with no tensors and no data is accepted (an empty file is valid safetensors)", () => {
    const { json, fileSize } = header({}, 0);
    assert.equal(parseSafetensorsHeader("m.safetensors", json, fileSize).tensors.size, 0);
  });

  test("what buildSafetensorsHeader writes parses back", () => {
    const built = buildSafetensorsHeader([
      { name: "x", dtype: "BF16", shape: [3, 5] },
      { name: "y", dtype: "F32", shape: [0] },
      { name: "z", dtype: "F16", shape: [7] },
    ]);
    const json = built.bytes.subarray(8);
    const h = parseSafetensorsHeader("m.safetensors", json, built.bytes.byteLength + built.dataBytes);
    assert.deepEqual([...h.tensors.keys()].sort(), ["x", "y", "z"]);
  });
});
