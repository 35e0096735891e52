/**
 * The job marker: a file `.mergeloom-job` holding the job id, written by the coordinator into the
 * temporary output directory it creates for a job. A worker writes a task's tensors only into a
 * directory whose marker names the task's job, so a hand-made task cannot aim a worker at any
 * other file (an input checkpoint, a user's file). It is removed before the output is committed.
 */
import { constants } from "node:fs";
import { lstat, open, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const JOB_MARKER_FILE = ".mergeloom-job";
/** The tag in every temporary output directory's name (`OUT.mergeloom-tmp-XXXXXX`, engine/output/output-dir.ts). */
export const TEMP_OUTPUT_TAG = ".mergeloom-tmp-";
/** Job ids are short tokens; anything longer in a marker is not ours. */
const MAX_MARKER_BYTES = 256;

export async function writeJobMarker(dir: string, jobId: string): Promise<void> {
  await writeFile(join(dir, JOB_MARKER_FILE), `${jobId}\n`, { mode: 0o644 });
}

export async function removeJobMarker(dir: string): Promise<void> {
  await rm(join(dir, JOB_MARKER_FILE), { force: true });
}

/**
 * The job id in `dir`'s marker, or a reason why there is none: the marker is missing, not a
 * regular file (a symlink is refused: it could name any file), or too large.
 */
export async function readJobMarker(dir: string): Promise<{ jobId: string } | { missing: string }> {
  const path = join(dir, JOB_MARKER_FILE);
  const st = await lstat(path).catch(() => undefined);
  if (!st) return { missing: `it has no ${JOB_MARKER_FILE} marker` };
  if (!st.isFile()) return { missing: `its ${JOB_MARKER_FILE} marker is not a regular file` };
  if (st.size > MAX_MARKER_BYTES) return { missing: `its ${JOB_MARKER_FILE} marker is ${st.size} bytes, not a job id` };
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const buf = Buffer.alloc(MAX_MARKER_BYTES);
    const { bytesRead } = await fh.read(buf, 0, MAX_MARKER_BYTES, 0);
    return { jobId: buf.subarray(0, bytesRead).toString("utf8").trim() };
  } finally {
    await fh.close();
  }
}
