/**
 * Entry module of a merge worker thread (run by piscina): each call merges one tensor or row chunk.
 * The thread keeps its own registry, file descriptors and scratch buffers between calls. Errors
 * come back as data: a thrown MergeloomError would lose its code and retryability crossing threads.
 */
import { toWireError } from "@mergeloom/proto/wire-error";
import type { WireError } from "@mergeloom/proto/records";
import { createDefaultRegistry } from "../methods/all-methods.js";
import { mergeTensor, prefetchJob, type TensorJob, type TensorJobResult } from "./merge-tensor.js";
import { TensorIO } from "./tensor-io.js";
import { createRemoteReader } from "./remote-reader.js";
import { countedMergeTensor } from "./counted-merge-tensor.js";
import { workerData } from "piscina";
import type { HttpOptions } from "../storage/http-byte-source.js";

const registry = createDefaultRegistry();
// The pool hands the process's HTTP timeouts and retries to each thread (functions cannot cross).
const io = new TensorIO(createRemoteReader({ http: (workerData as { http?: HttpOptions } | undefined)?.http }));

export type ThreadReply = { ok: true; result: TensorJobResult } | { ok: false; error: WireError };

/** The job merging now: the pool hands a thread its next job early (JOBS_PER_THREAD), and that one waits here. */
let merging: Promise<unknown> = Promise.resolve();
/** The last job's hints, asked for once they are: see `hint`. */
let hinting: Promise<unknown> = Promise.resolve();
/** How long a job's hints wait for the previous job's: a source in its retries must not hold them back. */
const HINT_WAIT_MS = 1000;

/**
 * Asks for a job's remote inputs once the previous job's are asked for (or HINT_WAIT_MS has
 * passed). The memory budget then goes to the job that merges first: read-ahead for the held job
 * takes only what is left (block-pool.ts). Two jobs arrive together at the start of every merge,
 * and their hints, each waiting on its own sources' headers, otherwise interleave — measured on
 * the 3 × 1 GB TIES bench, half of the first job's blocks went to the second.
 */
function hint(job: TensorJob): void {
  let timer: NodeJS.Timeout | undefined;
  const wait = new Promise((r) => (timer = setTimeout(r, HINT_WAIT_MS)));
  hinting = Promise.race([hinting, wait])
    .then(() => {
      clearTimeout(timer);
      return prefetchJob(job, io);
    })
    // Only a hint: a bad input fails in mergeTensor, named and with its code.
    .catch(() => undefined);
}

/**
 * The pool gives each thread up to two jobs. The second asks for its remote inputs at once, so they
 * stream in while the first one's kernels run — without it every Hub job began by waiting for its
 * first blocks. Merges themselves run one at a time: they share the thread's scratch buffers.
 */
export default async function run(job: TensorJob): Promise<ThreadReply> {
  // mergeTensor hints again when its turn comes: blocks the memory budget refused now may fit.
  hint(job);
  const turn = merging.then(async (): Promise<ThreadReply> => {
    try {
      return { ok: true, result: await countedMergeTensor(() => mergeTensor(job, registry, io)) };
    } catch (err) {
      return { ok: false, error: toWireError(err) };
    } finally {
      io.endJob(); // a worker thread serves job after job: no output descriptor outlives its job
    }
  });
  merging = turn;
  return turn;
}
