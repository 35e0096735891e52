/** A model reference as written in a config → its opened checkpoint (headers only), Hub refs pinned. */
import { openCheckpoint, type Checkpoint } from "../checkpoint.js";
import type { OpenByteSourceOptions } from "../open-byte-source.js";
import { resolveModelReference, type ResolveOptions } from "./resolve-model-reference.js";

export async function openModel(ref: string, opts: OpenByteSourceOptions & ResolveOptions = {}): Promise<Checkpoint> {
  const r = await resolveModelReference(ref, opts);
  const ck = await openCheckpoint(r.location, opts);
  ck.ref = ref;
  if (r.kind === "hub") ck.hub = { repo: r.repo, revision: r.revision, sha: r.sha };
  return ck;
}
