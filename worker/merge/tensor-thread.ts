/**
 * Entry module of a merge worker thread (run by piscina): each call merges one tensor or row chunk.
 * The thread keeps its own registry, file descriptors and scratch buffers between calls.
 */
import { createDefaultRegistry } from "./all-methods.js";
import { mergeTensor, type TensorJob, type TensorJobResult } from "./merge-tensor.js";
import { TensorIO } from "./tensor-io.js";
import { createRemoteReader } from "./remote-reader.js";

const registry = createDefaultRegistry();
const io = new TensorIO(createRemoteReader());

export default async function run(job: TensorJob): Promise<TensorJobResult> {
  return mergeTensor(job, registry, io);
}
