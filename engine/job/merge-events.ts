/** Events a merge emits, rendered as a progress bar on a TTY or as JSON lines with --json. */
export type MergeEvent =
  | { type: "plan"; jobId: string; tensors: number; tasks: number; shards: number; bytesToRead: number; bytesToWrite: number; peakMemoryBytes: number }
  | { type: "tensor"; name: string; bytesWritten: number; bytesRead: number; done: number; total: number }
  | { type: "task"; taskId: string; worker?: string; attempt?: number; done: number; total: number; networkBytes?: number }
  | { type: "assemble"; out: string }
  | { type: "done"; out: string; tensors: number; bytesRead: number; bytesWritten: number; seconds: number; checksum?: string }
  | { type: "warning"; message: string };

export type MergeEventSink = (e: MergeEvent) => void;
