/**
 * A worker reads and writes only under its storage roots: every local path a task names (inputs,
 * task vectors, destinations) must resolve — symlinks included — inside one of them.
 */
import { PathEscapeError } from "../../proto/errors.js";
import type { MergeTask } from "../../proto/merge-task.js";
import { localPath } from "../merge/tensor-io.js";
import { assertInsideRoots } from "../storage/storage-roots.js";

export async function checkTaskPaths(task: MergeTask, roots: readonly string[]): Promise<void> {
  const paths = new Set<string>();
  const add = (uri: string) => {
    if (uri.startsWith("discard://") || /^https?:\/\//.test(uri) || uri.startsWith("synthetic://")) return;
    const p = localPath(uri);
    if (p === undefined) throw new PathEscapeError(uri, roots);
    paths.add(p);
  };
  for (const t of task.tensors) {
    if (task.output !== "object") add(t.dest.uri); // object mode: dest is the coordinator's path, never opened here
    for (const i of t.inputs) {
      add(i.source.uri);
      for (const v of i.addVectors ?? []) add(v.source.uri);
    }
  }
  for (const p of paths) {
    if (p.split("/").includes("..")) throw new PathEscapeError(p, roots);
    await assertInsideRoots(p, roots);
  }
}
