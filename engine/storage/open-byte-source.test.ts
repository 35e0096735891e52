import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, realpath, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { PathEscapeError, StorageError } from "../errors/index.js";
import { FileByteSource } from "./file-byte-source.js";
import { HttpByteSource } from "./http-byte-source.js";
import { assertInsideRoots, openByteSource } from "./open-byte-source.js";
import { withTempDir } from "./storage-test-support.js";

/** root/ holds data.bin and a symlink to ../outside/secret.bin; outside/ is not a root. */
async function layout(dir: string): Promise<{ root: string; outside: string }> {
  const root = join(dir, "root");
  const outside = join(dir, "outside");
  await mkdir(join(root, "sub"), { recursive: true });
  await mkdir(outside);
  await writeFile(join(root, "data.bin"), Buffer.from([1, 2, 3, 4]));
  await writeFile(join(outside, "secret.bin"), Buffer.from([9, 9, 9, 9]));
  await symlink(join(outside, "secret.bin"), join(root, "link-out.bin"));
  await symlink(join(root, "data.bin"), join(root, "sub", "link-in.bin"));
  return { root, outside };
}

describe("openByteSource", () => {
  test("dispatches http(s) URLs, file:// URLs and plain paths to the right source", async () => {
    await withTempDir(async (dir) => {
      const { root } = await layout(dir);
      assert.ok(openByteSource("http://127.0.0.1:1/x") instanceof HttpByteSource);
      assert.ok(openByteSource("HTTPS://example.org/x") instanceof HttpByteSource);
      const viaUrl = openByteSource(pathToFileURL(join(root, "data.bin")).href);
      assert.ok(viaUrl instanceof FileByteSource);
      assert.deepEqual([...(await viaUrl.read(1, 2))], [2, 3]);
      await viaUrl.close();
      const plain = openByteSource(join(root, "data.bin"));
      assert.equal(await plain.size(), 4);
      await plain.close();
    });
  });

  test("an unsupported scheme is refused with the list of supported ones", () => {
    assert.throws(
      () => openByteSource("s3://bucket/model.safetensors"),
      (err: unknown) => {
        assert.ok(err instanceof StorageError);
        assert.match(err.message, /unsupported URI scheme 's3'.*http:\/\/, https:\/\/, file:\/\//);
        return true;
      },
    );
  });

  test("with storage roots, files inside a root (directly or via an inside symlink) are readable", async () => {
    await withTempDir(async (dir) => {
      const { root } = await layout(dir);
      for (const p of [join(root, "data.bin"), join(root, "sub", "..", "data.bin"), join(root, "sub", "link-in.bin")]) {
        const src = openByteSource(p, { storageRoots: [root] });
        assert.deepEqual([...(await src.read(0, 4))], [1, 2, 3, 4]);
        await src.close();
      }
    });
  });

  test("with storage roots, `..`, absolute paths elsewhere and symlinks pointing out are refused", async () => {
    await withTempDir(async (dir) => {
      const { root, outside } = await layout(dir);
      const escapes = [
        join(root, "..", "outside", "secret.bin"),
        join(outside, "secret.bin"),
        "/etc/passwd",
        join(root, "link-out.bin"),
        pathToFileURL(join(outside, "secret.bin")).href,
      ];
      for (const p of escapes) {
        const src = openByteSource(p, { storageRoots: [root] });
        await assert.rejects(src.read(0, 4), (err: unknown) => {
          assert.ok(err instanceof PathEscapeError, `${p} should be refused`);
          assert.equal(err.code, "PATH_ESCAPE");
          assert.match(err.message, /outside the storage roots/);
          return true;
        });
      }
    });
  });
});

describe("assertInsideRoots", () => {
  test("returns the real path of an existing file inside a root", async () => {
    await withTempDir(async (dir) => {
      const { root } = await layout(dir);
      assert.equal(await assertInsideRoots(join(root, "sub", "link-in.bin"), [root]), await realpath(join(root, "data.bin")));
    });
  });

  test("resolves a path that does not exist yet through its nearest existing parent", async () => {
    await withTempDir(async (dir) => {
      const { root, outside } = await layout(dir);
      const real = await realpath(root);
      assert.equal(await assertInsideRoots(join(root, "out", "new", "model"), [root]), join(real, "out", "new", "model"));
      await symlink(outside, join(root, "escape-dir"));
      await assert.rejects(assertInsideRoots(join(root, "escape-dir", "new-output"), [root]), PathEscapeError);
      await assert.rejects(assertInsideRoots(join(root, "..", "sibling-output"), [root]), PathEscapeError);
    });
  });

  test("a sibling directory sharing the root's name prefix is outside the root", async () => {
    await withTempDir(async (dir) => {
      await mkdir(join(dir, "data"));
      await mkdir(join(dir, "data-private"));
      await assert.rejects(assertInsideRoots(join(dir, "data-private", "x"), [join(dir, "data")]), PathEscapeError);
    });
  });

  test("an empty root list admits nothing", async () => {
    await assert.rejects(assertInsideRoots("/tmp", []), /none configured/);
  });
});
