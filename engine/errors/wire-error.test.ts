import { test } from "node:test";
import assert from "node:assert/strict";
import { isPermanent } from "@mergeloom/proto/errors";
import { ShapeMismatchError, StorageError } from "./domain-errors.js";
import { fromWireError, toWireError } from "@mergeloom/proto/wire-error";

test("a typed error crosses the wire with its code, message and retryability", () => {
  const wire = toWireError(new ShapeMismatchError("merge w: shapes [2,3] and [3,2] differ"));
  assert.deepEqual(wire, { code: "SHAPE_MISMATCH", message: "merge w: shapes [2,3] and [3,2] differ", retryable: false });
  const back = fromWireError(wire);
  assert.equal(back.code, "SHAPE_MISMATCH");
  assert.equal(isPermanent(back), true);
  assert.equal(isPermanent(fromWireError(toWireError(new StorageError("read x: reset", { retryable: true })))), false);
});

test("an untyped error becomes a retryable MERGE_FAILED", () => {
  assert.deepEqual(toWireError(new Error("socket hang up")), { code: "MERGE_FAILED", message: "socket hang up", retryable: true });
  assert.equal(toWireError("str").message, "str");
});
