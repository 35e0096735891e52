import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hubSettingsFromEnv } from "./hub-settings.js";

test("the standard variables: HF_ENDPOINT, HF_HUB_CACHE over HF_HOME/hub, HF_HUB_OFFLINE", () => {
  const s = hubSettingsFromEnv({ HF_ENDPOINT: "http://mirror:8080/", HF_HOME: "/h", HF_HUB_OFFLINE: "1" });
  assert.equal(s.endpoint, "http://mirror:8080");
  assert.equal(s.cacheDir, "/h/hub");
  assert.equal(s.offline, true);
  assert.equal(hubSettingsFromEnv({ HF_HOME: "/h", HF_HUB_CACHE: "/c" }).cacheDir, "/c");
  assert.equal(hubSettingsFromEnv({ HOME: "/home/u" }).endpoint, "https://huggingface.co");
  assert.equal(hubSettingsFromEnv({ HF_HUB_OFFLINE: "0" }).offline, false);
});

test("the token: HF_TOKEN, else the file at HF_TOKEN_PATH, else HF_HOME/token (huggingface-cli login)", () => {
  const home = mkdtempSync(join(tmpdir(), "hf-home-"));
  writeFileSync(join(home, "token"), "hf_fromlogin\n");
  const other = join(home, "other");
  writeFileSync(other, "hf_frompath");
  assert.equal(hubSettingsFromEnv({ HF_HOME: home }).token, "hf_fromlogin");
  assert.equal(hubSettingsFromEnv({ HF_HOME: home, HF_TOKEN_PATH: other }).token, "hf_frompath");
  assert.equal(hubSettingsFromEnv({ HF_HOME: home, HF_TOKEN_PATH: other, HF_TOKEN: "hf_env" }).token, "hf_env");
  assert.equal(hubSettingsFromEnv({ HF_HOME: join(home, "none") }).token, undefined);
});
