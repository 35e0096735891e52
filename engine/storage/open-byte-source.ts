/** Picks the ByteSource for a URI: http(s) URLs, file:// URLs and plain paths. */
import { fileURLToPath } from "node:url";
import { StorageError } from "../errors/index.js";
import type { ByteSource } from "./byte-source.js";
import { FileByteSource } from "./file-byte-source.js";
import type { FileHandlePool } from "./file-handle-pool.js";
import { HttpByteSource, type HttpOptions } from "./http-byte-source.js";
import { isSyntheticUri, SyntheticByteSource } from "./synthetic-checkpoint.js";
import { HubByteSource } from "./hub/hub-byte-source.js";
import { isHubUri } from "./hub/hub-reference.js";

export { assertInsideRoots } from "./storage-roots.js";

export interface OpenByteSourceOptions {
  /**
   * Workers set this: local paths must resolve (after `..` and symlinks) inside one of these
   * roots, else reads fail with PathEscapeError. http(s) URLs are not affected.
   */
  storageRoots?: readonly string[];
  pool?: FileHandlePool;
  http?: HttpOptions;
}

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//;

export function isHttpUri(uri: string): boolean {
  return /^https?:\/\//i.test(uri);
}

/** The local path a `file://` URI or plain path names; undefined for other schemes. */
export function localPathOf(uri: string): string | undefined {
  if (/^file:\/\//i.test(uri)) {
    try {
      return fileURLToPath(uri);
    } catch (err) {
      throw new StorageError(`open ${uri}: not a valid file URL (${(err as Error).message})`, { cause: err });
    }
  }
  return SCHEME.test(uri) ? undefined : uri;
}

/**
 * Returns a source without touching storage; the root check and the open happen on first use, so
 * a path outside the roots fails on the first `size()` or `read()`.
 */
export function openByteSource(uri: string, opts: OpenByteSourceOptions = {}): ByteSource {
  if (isHttpUri(uri)) return new HttpByteSource(uri, opts.http);
  if (isSyntheticUri(uri)) return new SyntheticByteSource(uri);
  if (isHubUri(uri)) return new HubByteSource(uri, opts.http);
  const path = localPathOf(uri);
  if (path === undefined) {
    throw new StorageError(
      `open ${uri}: unsupported URI scheme '${SCHEME.exec(uri)?.[1]}' (supported: http://, https://, file://, synthetic://, hf://, or a plain path)`,
    );
  }
  if (path === "") throw new StorageError("open: empty path; pass a file path or URL");
  return new FileByteSource(path, { storageRoots: opts.storageRoots, pool: opts.pool });
}
