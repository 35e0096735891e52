/**
 * Opens a Hugging Face style safetensors checkpoint (a directory, an http(s) base URL, or one
 * .safetensors file) and lists its tensors with their byte ranges. Only headers are read.
 */
import { readdir, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import type { DType } from "@mergeloom/proto/dtype";
import { MergeloomError } from "@mergeloom/proto/errors";
import { CheckpointError } from "../errors/index.js";
import type { SafetensorsHeader } from "../tensor/safetensors.js";
import { fsError } from "./fs-error.js";
import { fetchSmallFile } from "./http-byte-source.js";
import { isHttpUri, localPathOf, openByteSource, type OpenByteSourceOptions } from "./open-byte-source.js";
import { readSafetensorsHeader } from "./read-safetensors-header.js";
import { notRegularFile, readRegularFile } from "./regular-file.js";
import { assertInsideRoots } from "./storage-roots.js";
import { isSyntheticUri, openSyntheticCheckpoint } from "./synthetic-checkpoint.js";
import { isHubUri } from "./hub/hub-reference.js";
import { openHubCheckpoint } from "./hub/open-hub-checkpoint.js";

export interface CheckpointTensor {
  name: string;
  dtype: DType;
  shape: number[];
  /** The weight file holding the tensor: an absolute path, an http(s) URL or a pinned `hf://org/name@sha/file`. */
  uri: string;
  /** Absolute byte offset of the tensor's data in that file. */
  offset: number;
  byteLength: number;
}

export interface Checkpoint {
  /** The reference as given. */
  ref: string;
  /** The directory (absolute; real when storage roots are set) or base URL (ending in `/`) the files live in. */
  location: string;
  /** URIs of the weight files, sorted by file name (the same strings as CheckpointTensor.uri). */
  files: string[];
  tensors: Map<string, CheckpointTensor>;
  /** config.json when present. */
  config?: Record<string, unknown>;
  /** A Hub reference: the repo, the revision as written, and the commit it was pinned to. */
  hub?: { repo: string; revision: string; sha: string };
}

export const INDEX_FILE = "model.safetensors.index.json";
export const SINGLE_FILE = "model.safetensors";
const HEADER_CONCURRENCY = 8;

export async function openCheckpoint(ref: string, opts: OpenByteSourceOptions = {}): Promise<Checkpoint> {
  if (isSyntheticUri(ref)) return openSyntheticCheckpoint(ref);
  if (isHubUri(ref)) return openHubCheckpoint(ref, opts);
  return isHttpUri(ref) ? openRemote(ref, opts) : openLocal(ref, opts);
}

async function openLocal(ref: string, opts: OpenByteSourceOptions): Promise<Checkpoint> {
  const given = localPathOf(ref);
  if (given === undefined) return openRemote(ref, opts); // unreachable: openByteSource names the bad scheme
  const path = opts.storageRoots ? await assertInsideRoots(given, opts.storageRoots) : resolve(given);
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    const e = fsError("open", path, err);
    throw e.code === "CHECKPOINT_MISSING"
      ? new CheckpointError(ref, "no such file or directory; check the model path", { cause: err, code: "CHECKPOINT_MISSING" })
      : e;
  }
  if (!st.isFile() && !st.isDirectory()) throw notRegularFile(path, st);
  if (st.isFile()) {
    if (!path.endsWith(".safetensors")) {
      throw new CheckpointError(ref, "not a directory or .safetensors file; pass a model directory or its model.safetensors");
    }
    const dir = dirname(path);
    const tensors = await readShards([{ uri: path, names: undefined }], undefined, opts);
    return { ref, location: dir, files: [path], tensors, config: await readLocalConfig(dir) };
  }
  const entries = new Set(
    await readdir(path).catch((err: unknown) => {
      throw fsError("list", path, err);
    }),
  );
  let files: string[];
  let tensors: Map<string, CheckpointTensor>;
  if (entries.has(INDEX_FILE)) {
    const indexPath = join(path, INDEX_FILE);
    const raw = await readRegularFile(indexPath).catch((err: unknown) => {
      throw fsError("read", indexPath, err);
    });
    const weightMap = parseIndex(indexPath, raw);
    const shards = groupByShard(weightMap);
    for (const shard of shards.keys()) {
      if (!entries.has(shard)) {
        throw new CheckpointError(indexPath, `shard ${shard} named in the index does not exist in ${path}; the download is incomplete`, {
          code: "CHECKPOINT_MISSING",
        });
      }
    }
    files = [...shards.keys()].map((s) => join(path, s));
    tensors = await readShards(
      [...shards].map(([s, names]) => ({ uri: join(path, s), names })),
      indexPath,
      opts,
    );
  } else if (entries.has(SINGLE_FILE)) {
    files = [join(path, SINGLE_FILE)];
    tensors = await readShards([{ uri: files[0], names: undefined }], undefined, opts);
  } else {
    const found = [...entries].sort();
    const shown = found.length > 12 ? [...found.slice(0, 12), `... ${found.length - 12} more`] : found;
    const hasTorch = found.some((f) => f.endsWith(".bin") || f.endsWith(".pt") || f.endsWith(".pth"));
    throw new CheckpointError(
      path,
      `no ${SINGLE_FILE} or ${INDEX_FILE} in ${path} (found: ${shown.join(", ") || "nothing"}); ${hasTorch ? "convert the checkpoint to safetensors first" : "pass a Hugging Face model directory with safetensors weights"}`,
      { code: "CHECKPOINT_MISSING" },
    );
  }
  return { ref, location: path, files, tensors, config: await readLocalConfig(path) };
}

async function openRemote(ref: string, opts: OpenByteSourceOptions): Promise<Checkpoint> {
  const u = new URL(ref);
  if (u.pathname.endsWith(".safetensors")) {
    const base = new URL(".", u).href;
    const tensors = await readShards([{ uri: u.href, names: undefined }], undefined, opts);
    return { ref, location: base, files: [u.href], tensors, config: await readRemoteConfig(base, opts) };
  }
  if (!u.pathname.endsWith("/")) u.pathname += "/";
  const base = u.href;
  const indexUrl = new URL(INDEX_FILE, base).href;
  const raw = await fetchSmallFile(indexUrl, opts.http);
  let files: string[];
  let tensors: Map<string, CheckpointTensor>;
  if (raw) {
    const shards = groupByShard(parseIndex(indexUrl, raw));
    files = [...shards.keys()].map((s) => new URL(s, base).href);
    tensors = await readShards(
      [...shards].map(([s, names]) => ({ uri: new URL(s, base).href, names })),
      indexUrl,
      opts,
    );
  } else {
    files = [new URL(SINGLE_FILE, base).href];
    try {
      tensors = await readShards([{ uri: files[0], names: undefined }], undefined, opts);
    } catch (err) {
      if (err instanceof MergeloomError && err.code === "CHECKPOINT_MISSING") {
        throw new CheckpointError(
          base,
          `no ${SINGLE_FILE} or ${INDEX_FILE} at ${base} (both answered 404); pass the base URL of a Hugging Face model directory with safetensors weights`,
          { cause: err, code: "CHECKPOINT_MISSING" },
        );
      }
      throw err;
    }
  }
  return { ref, location: base, files, tensors, config: await readRemoteConfig(base, opts) };
}

/** Validates an index: `weight_map` must map tensor names to plain shard file names. */
export function parseIndex(indexFile: string, raw: Uint8Array): Map<string, string> {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw));
  } catch (err) {
    throw new CheckpointError(indexFile, `index is not valid JSON (${(err as Error).message})`, { cause: err });
  }
  const wm = (doc as { weight_map?: unknown } | null)?.weight_map;
  if (doc === null || typeof doc !== "object" || Array.isArray(doc) || wm === null || typeof wm !== "object" || Array.isArray(wm)) {
    throw new CheckpointError(indexFile, "index has no weight_map object of tensor name -> shard file name");
  }
  const out = new Map<string, string>();
  for (const [name, file] of Object.entries(wm)) {
    if (typeof file !== "string" || file === "") {
      throw new CheckpointError(indexFile, `weight_map['${name}'] must be a shard file name, got ${JSON.stringify(file)}`);
    }
    if (file.includes("/") || file.includes("\\") || file === "." || file === ".." || file.includes("\0")) {
      throw new CheckpointError(indexFile, `weight_map['${name}'] names '${file}'; shard names must be plain file names in the checkpoint directory`);
    }
    out.set(name, file);
  }
  if (out.size === 0) throw new CheckpointError(indexFile, "weight_map is empty; the index lists no tensors");
  return out;
}

export function groupByShard(weightMap: Map<string, string>): Map<string, string[]> {
  const shards = new Map<string, string[]>();
  for (const [name, file] of weightMap) {
    const list = shards.get(file);
    if (list) list.push(name);
    else shards.set(file, [name]);
  }
  // Shard order follows file names (model-00001-..., model-00002-...), not index order.
  return new Map([...shards].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
}

/**
 * Reads every shard's header and collects tensors. With `names` (from an index) only those
 * tensors are taken and each must be present; a name found in two shards is an error either way.
 */
export async function readShards(
  shards: readonly { uri: string; names: readonly string[] | undefined }[],
  indexFile: string | undefined,
  opts: OpenByteSourceOptions,
): Promise<Map<string, CheckpointTensor>> {
  const headers: SafetensorsHeader[] = new Array(shards.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < shards.length) {
      const i = next++;
      const src = openByteSource(shards[i].uri, opts);
      try {
        headers[i] = await readSafetensorsHeader(src);
      } catch (err) {
        if (indexFile && err instanceof MergeloomError && err.code === "CHECKPOINT_MISSING") {
          throw new CheckpointError(indexFile, `shard ${basename(shards[i].uri)} named in the index does not exist (${err.message})`, {
            cause: err,
            code: "CHECKPOINT_MISSING",
          });
        }
        throw err;
      } finally {
        await src.close();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(HEADER_CONCURRENCY, shards.length) }, worker));

  const tensors = new Map<string, CheckpointTensor>();
  const owner = new Map<string, string>();
  shards.forEach((shard, i) => {
    for (const name of headers[i].tensors.keys()) {
      const prev = owner.get(name);
      if (prev !== undefined) {
        throw new CheckpointError(
          indexFile ?? shard.uri,
          `tensor '${name}' appears in both ${basename(prev)} and ${basename(shard.uri)}; the checkpoint is inconsistent`,
        );
      }
      owner.set(name, shard.uri);
    }
  });
  shards.forEach((shard, i) => {
    const h = headers[i];
    const names = shard.names ?? [...h.tensors.keys()];
    for (const name of names) {
      const e = h.tensors.get(name);
      if (!e) {
        throw new CheckpointError(
          indexFile ?? shard.uri,
          `tensor '${name}' is listed in the index under ${basename(shard.uri)} but that shard does not contain it`,
        );
      }
      tensors.set(name, { name, dtype: e.dtype, shape: e.shape, uri: shard.uri, offset: e.offset, byteLength: e.byteLength });
    }
  });
  return tensors;
}

export function parseConfig(file: string, raw: Uint8Array): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw));
  } catch (err) {
    throw new CheckpointError(file, `config.json is not valid JSON (${(err as Error).message})`, { cause: err });
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) throw new CheckpointError(file, "config.json is not a JSON object");
  return doc as Record<string, unknown>;
}

async function readLocalConfig(dir: string): Promise<Record<string, unknown> | undefined> {
  const file = join(dir, "config.json");
  let raw: Buffer;
  try {
    raw = await readRegularFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw fsError("read", file, err);
  }
  return parseConfig(file, raw);
}

async function readRemoteConfig(base: string, opts: OpenByteSourceOptions): Promise<Record<string, unknown> | undefined> {
  const url = new URL("config.json", base).href;
  const raw = await fetchSmallFile(url, opts.http, 16 << 20);
  return raw ? parseConfig(url, raw) : undefined;
}
