import { test } from "node:test";
import assert from "node:assert/strict";
import { hubUri, isHubRepoId, parseHubReference, parsePinnedHubUri } from "./hub-reference.js";

const SHA = "0123456789abcdef0123456789abcdef01234567";

test("org/name and org/name@revision parse as Hub references; paths and URIs do not", () => {
  assert.deepEqual(parseHubReference("mistralai/Mistral-7B-v0.1"), { repo: "mistralai/Mistral-7B-v0.1" });
  assert.deepEqual(parseHubReference("NousResearch/Hermes-3-Llama-3.1-8B@main"), { repo: "NousResearch/Hermes-3-Llama-3.1-8B", revision: "main" });
  assert.deepEqual(parseHubReference("org/m@refs/pr/1"), { repo: "org/m", revision: "refs/pr/1" });
  for (const notHub of ["./a/b", "/abs/path", "a/b/c", "model", "a/../b", "a--b/c", "http://x/y", "../x"])
    assert.equal(parseHubReference(notHub), undefined, notHub);
  assert.throws(() => parseHubReference("org/m@../../etc"), /not a valid branch, tag or commit/);
  assert.ok(isHubRepoId("a/b.c_d-e") && !isHubRepoId("a/b/c") && !isHubRepoId("-a/b"));
});

test("pinned URIs round-trip and refuse anything that could leave the repository", () => {
  assert.deepEqual(parsePinnedHubUri(hubUri("org/m", SHA, "sub/model.safetensors")), { repo: "org/m", sha: SHA, file: "sub/model.safetensors" });
  assert.deepEqual(parsePinnedHubUri(hubUri("org/m", SHA)), { repo: "org/m", sha: SHA, file: undefined });
  for (const bad of [`hf://org/m@main/x`, `hf://org/m@${SHA}/../x`, `hf://org/m@${SHA}//x`, `hf://../m@${SHA}/x`, `hf://org/m@${SHA}/a\\b`]) {
    assert.throws(() => parsePinnedHubUri(bad), /not a pinned Hub URI|not a plain path/, bad);
  }
});
