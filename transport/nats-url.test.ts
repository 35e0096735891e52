import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseNatsUrls, redactSecrets, redactUrls } from "./nats-url.js";

describe("credentials in NATS URLs", () => {
  test("user and password are taken out of the URL, as the nats CLI reads them", () => {
    assert.deepEqual(parseNatsUrls(["nats://alice:p%40ss:w0rd@host:4222"]), { servers: ["nats://host:4222"], user: "alice", pass: "p@ss:w0rd" });
  });

  test("a URL with only a user part carries a token", () => {
    assert.deepEqual(parseNatsUrls(["nats://s3cr3t@host"]), { servers: ["nats://host"], token: "s3cr3t" });
  });

  test("the first URL with credentials supplies them; every URL loses its userinfo", () => {
    assert.deepEqual(parseNatsUrls(["nats://a:4222", "tls://u:p@b:4222", "nats://v:q@c"]), {
      servers: ["nats://a:4222", "tls://b:4222", "nats://c"],
      user: "u",
      pass: "p",
    });
  });

  test("URLs without credentials pass through unchanged", () => {
    assert.deepEqual(parseNatsUrls(["nats://127.0.0.1:4222"]), { servers: ["nats://127.0.0.1:4222"] });
  });

  test("redaction hides passwords and tokens in any text, keeping the user name", () => {
    assert.equal(redactUrls("connect to nats://bob:hunter2@h:4222 failed; also tls://tok@x"), "connect to nats://bob:***@h:4222 failed; also tls://***@x");
    assert.equal(redactSecrets("Authorization Violation for hunter2 (hunter%402)", ["hunter2", "hunter@2"]), "Authorization Violation for *** (***)");
  });
});
