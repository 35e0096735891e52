import { test } from "node:test";
import assert from "node:assert/strict";
import { capEchoes, capText } from "@mergeloom/proto/cap-echoes";
import { ConfigError, UnknownMethodError } from "./domain-errors.js";

test("short messages and values are left alone", () => {
  const m = "config merge_method: unknown merge method 'tie' (known: linear, ties)";
  assert.equal(capEchoes(m), m);
  assert.equal(capText("abc"), "abc");
});

test("a quoted value over 80 characters keeps its head and tail around an ellipsis and says how long it was", () => {
  const v = "a".repeat(50) + "b".repeat(50);
  const out = capEchoes(`unknown key '${v}' in mapping`);
  assert.equal(out, `unknown key '${"a".repeat(48)}…${"b".repeat(31)}' (100 characters) in mapping`);
});

test("every MergeloomError caps what it echoes: a 1 MB method name and a 1 MB key in a field path", () => {
  const huge = "m".repeat(1_000_000);
  const e1 = new UnknownMethodError(huge, ["linear", "ties"]);
  assert.ok(e1.message.length < 200, e1.message);
  assert.match(e1.message, /'m+…m+' \(1000000 characters\) \(known: linear, ties\)$/);
  const e2 = new ConfigError(`slices[0].${huge}`, "unknown key");
  assert.ok(e2.message.length < 200, e2.message);
});

test("an apostrophe inside words is not a quote: possessives around a short quoted name are left alone", () => {
  const m = `evaluate /x/model.onnx: weight 'model.layers.1.mlp.up_proj.weight' has shape [128,352] but the graph expects [352,128]; the checkpoint does not match the graph's architecture`;
  assert.equal(capEchoes(m), m);
  const long = "v".repeat(100);
  assert.equal(capEchoes(`the model's value '${long}' isn't valid`), `the model's value '${capText(long)}' (100 characters) isn't valid`);
});

test("paths are echoed whole up to 1024 characters, so a long cache path still names its file", () => {
  const p = "/home/user/.cache/huggingface/hub/models--org--name/snapshots/" + "0".repeat(40) + "/model-00001-of-00030.safetensors";
  const m = `plan: model '${p}' (${p}) has no tensors for layer 2`;
  assert.equal(capEchoes(m), m);
  const huge = "/" + "d".repeat(5000);
  assert.ok(capEchoes(`read '${huge}': missing`).length < 300);
});
