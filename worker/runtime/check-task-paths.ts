/**
 * A worker reads and writes only under its storage roots: every local path a task names (inputs,
 * task vectors, destinations, evaluation files) must resolve — symlinks included — inside one of
 * them. Remote inputs (http, synthetic, pinned Hub files `hf://`) and `discard://` are not paths.
 */
import { PathEscapeError } from "@mergeloom/engine/errors";
import type { MergeTask, TensorSpec } from "@mergeloom/proto/merge-task";
import { localPath } from "@mergeloom/engine/driver";
import { assertInsideRoots } from "@mergeloom/engine/storage";
import { isHubUri, parsePinnedHubUri } from "@mergeloom/engine/storage";

/** Checks each URI that names a local path; `..` segments are refused outright. */
export async function checkPathsInsideRoots(uris: Iterable<string>, roots: readonly string[]): Promise<void> {
  const paths = new Set<string>();
  for (const uri of uris) {
    if (uri.startsWith("discard://") || /^https?:\/\//.test(uri) || uri.startsWith("synthetic://")) continue;
    if (isHubUri(uri)) {
      parsePinnedHubUri(uri); // validated: its cache path cannot leave the HF cache
      continue;
    }
    const p = localPath(uri) ?? (uri.includes("://") ? undefined : uri);
    if (p === undefined) throw new PathEscapeError(uri, roots);
    paths.add(p);
  }
  for (const p of paths) {
    if (p.split(/[\\/]/).includes("..")) throw new PathEscapeError(p, roots);
    await assertInsideRoots(p, roots);
  }
}

/** Every input (and task-vector) URI of the tensors. */
export function inputUris(tensors: readonly TensorSpec[]): string[] {
  const out: string[] = [];
  for (const t of tensors) {
    for (const i of t.inputs) {
      out.push(i.source.uri);
      for (const v of i.addVectors ?? []) out.push(v.source.uri);
      if (i.lora) out.push(i.lora.a.uri, i.lora.b.uri);
    }
  }
  return out;
}

export async function checkTaskPaths(task: MergeTask, roots: readonly string[]): Promise<void> {
  const uris = inputUris(task.tensors);
  // Object mode: dest is the coordinator's path and is never opened here.
  if (task.output !== "object") for (const t of task.tensors) uris.push(t.dest.uri);
  await checkPathsInsideRoots(uris, roots);
}
