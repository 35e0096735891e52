/**
 * Opened checkpoints (headers) by model reference, for processes that plan many merges of the
 * same models (evolutionary search candidates). A failed open is forgotten so it can be retried.
 */
import type { Checkpoint } from "./checkpoint.js";
import { openModel } from "./hub/open-model.js";
import type { OpenByteSourceOptions } from "./open-byte-source.js";

export class CheckpointCache {
  private readonly byRef = new Map<string, Promise<Checkpoint>>();
  constructor(private readonly opts: OpenByteSourceOptions = {}) {}

  open(ref: string): Promise<Checkpoint> {
    let p = this.byRef.get(ref);
    if (!p) {
      p = openModel(ref, this.opts);
      this.byRef.set(ref, p);
      p.catch(() => this.byRef.delete(ref));
    }
    return p;
  }
}
