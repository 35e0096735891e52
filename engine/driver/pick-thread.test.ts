import { test } from "node:test";
import assert from "node:assert/strict";
import { pickThread, type ThreadLoad } from "./pick-thread.js";

// What piscina reports: a thread holding one abortable job reads as usage Infinity.
const idle: ThreadLoad = { currentUsage: 0, isRunningAbortableTask: false };
const oneAbortable: ThreadLoad = { currentUsage: Infinity, isRunningAbortableTask: true };
const one: ThreadLoad = { currentUsage: 1, isRunningAbortableTask: false };
const two: ThreadLoad = { currentUsage: 2, isRunningAbortableTask: false };

test("an idle thread is picked before any busy one, wherever it is in the list", () => {
  assert.equal(pickThread([oneAbortable, one, idle], 2), idle);
});

test("with no idle thread, one holding a single job (abortable or not) takes a second", () => {
  assert.equal(pickThread([two, oneAbortable], 2), oneAbortable);
  assert.equal(pickThread([two, one], 2), one);
});

test("no thread gets more than perThread jobs: the job then waits in the pool's queue", () => {
  assert.equal(pickThread([two, two], 2), null);
  assert.equal(pickThread([oneAbortable, one], 1), null);
  assert.equal(pickThread([], 2), null);
});
