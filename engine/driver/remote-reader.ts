/** Reads non-local tensor bytes (HTTP ranges, synthetic checkpoints) through cached byte sources. */
import { openByteSource } from "../storage/open-byte-source.js";
import type { ByteSource } from "../storage/byte-source.js";
import type { HttpOptions } from "../storage/http-byte-source.js";
import type { RemoteReader } from "./tensor-io.js";

export function createRemoteReader(opts: { storageRoots?: readonly string[]; http?: HttpOptions } = {}): RemoteReader {
  const sources = new Map<string, ByteSource>();
  const source = (uri: string) => {
    let src = sources.get(uri);
    if (!src) {
      src = openByteSource(uri, opts);
      sources.set(uri, src);
    }
    return src;
  };
  return {
    willNeed(uri, offset, length) {
      return source(uri).willNeed?.(offset, length);
    },
    dontNeed(uri, offset, length) {
      sources.get(uri)?.dontNeed?.(offset, length);
    },
    async read(uri, offset, length, into) {
      const got = await source(uri).read(offset, length, into);
      if (got !== into && got.byteLength) into.set(got.subarray(0, length));
    },
  };
}
