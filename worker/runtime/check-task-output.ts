/**
 * Where a task may write: only into shard files the coordinator preallocated inside the job's own
 * temporary output directory. A task message is data from the network; without this check a
 * hand-published task could make a worker overwrite any file it can write (an input checkpoint,
 * a user's file). Each `dest` must be
 * - a local absolute path without `..`, directly inside a directory named `*.mergeloom-tmp-*`
 *   (the coordinator's temp naming) that is a real directory, not a symlink,
 * - in a directory whose `.mergeloom-job` marker holds this task's job id,
 * - an existing regular file (not a symlink, not a hard link to another file: nlink 1).
 * The writer then opens it with O_NOFOLLOW, so a symlink swapped in after the check is refused too.
 */
import { lstat } from "node:fs/promises";
import { basename, dirname, isAbsolute } from "node:path";
import { MergeloomError } from "@mergeloom/proto/errors";
import type { MergeTask } from "@mergeloom/proto/merge-task";
import { localPath } from "@mergeloom/engine/driver";
import { readJobMarker, TEMP_OUTPUT_TAG } from "@mergeloom/engine/output";

export class OutputRefusedError extends MergeloomError {
  constructor(task: MergeTask, dest: string, defect: string) {
    super(
      "PATH_ESCAPE",
      `write task ${task.taskId} of job ${task.jobId} to ${dest}: refused, ${defect}; workers write only into the temporary output directory the coordinator created for the job`,
    );
  }
}

export async function checkTaskOutput(task: MergeTask): Promise<void> {
  if (task.output === "object") return; // dest is the coordinator's; the worker writes a scratch file
  const dirs = new Map<string, string[]>();
  for (const t of task.tensors) {
    const uri = t.dest.uri;
    if (uri.startsWith("discard://")) continue;
    const path = localPath(uri);
    if (path === undefined || !isAbsolute(path)) throw new OutputRefusedError(task, uri, "the destination is not an absolute local path");
    if (path.split("/").includes("..") || path.split("/").includes(".")) throw new OutputRefusedError(task, uri, "the path has '.' or '..' segments");
    const dir = dirname(path);
    const files = dirs.get(dir) ?? [];
    if (!files.includes(path)) files.push(path);
    dirs.set(dir, files);
  }
  for (const [dir, files] of dirs) {
    if (!basename(dir).includes(TEMP_OUTPUT_TAG)) throw new OutputRefusedError(task, files[0], `${dir} is not a temporary output directory`);
    const st = await lstat(dir).catch(() => undefined);
    if (!st) throw new OutputRefusedError(task, files[0], `the job's temporary output directory ${dir} does not exist`);
    if (st.isSymbolicLink() || !st.isDirectory()) throw new OutputRefusedError(task, files[0], `${dir} is a symlink or not a directory`);
    const marker = await readJobMarker(dir);
    if ("missing" in marker) throw new OutputRefusedError(task, files[0], `${dir} is not a job's output directory (${marker.missing})`);
    if (marker.jobId !== task.jobId) throw new OutputRefusedError(task, files[0], `${dir} belongs to another job`);
    for (const file of files) {
      const f = await lstat(file).catch(() => undefined);
      if (!f) throw new OutputRefusedError(task, file, "the shard file does not exist (the coordinator preallocates every shard)");
      if (!f.isFile()) throw new OutputRefusedError(task, file, "the shard is a symlink or not a regular file");
      if (f.nlink !== 1) throw new OutputRefusedError(task, file, `the shard has ${f.nlink} hard links (it would write through to another file)`);
    }
  }
}
