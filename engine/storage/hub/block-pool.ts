/**
 * Blocks of remote files held in memory (each as the chunks its response arrived in), shared by the Hub sources of one process (or thread):
 * least recently used first out, within a byte budget. A block is fetched once however many
 * readers (or read-ahead) ask for it; in-flight blocks are never evicted, and read-ahead only
 * starts when settled blocks can make room for it, so memory stays near the budget.
 */
interface Entry {
  size: number;
  promise: Promise<Uint8Array[]>;
  settled: boolean;
  /** Failed (after the client's retries): kept until a read (not read-ahead) takes the error. */
  failed?: boolean;
  /** A read (not read-ahead) waits on it: a failure reaches that read, and the block is then forgotten. */
  wanted: boolean;
  data?: Uint8Array[];
  onEvict?: (data: Uint8Array[]) => void;
}

export class BlockPool {
  /** Map order is recency: the first entry is the least recently used. */
  private readonly entries = new Map<string, Entry>();
  private used = 0;

  constructor(readonly budgetBytes: number) {}

  /** Bytes held or in flight (tests, metrics). */
  get bytes(): number {
    return this.used;
  }

  /**
   * The block `key` (`size` bytes), loaded by `load` unless held or in flight. With `ahead`
   * (read-ahead) it returns undefined instead of going over the budget. `onEvict` sees the bytes
   * of a block pushed out of memory (to spill it to disk when it will be read again).
   */
  get(key: string, size: number, load: () => Promise<Uint8Array[]>, ahead = false, onEvict?: (data: Uint8Array[]) => void): Promise<Uint8Array[]> | undefined {
    const hit = this.entries.get(key);
    if (hit?.failed) {
      // One block, one round of retries: the read that needs a block read ahead in vain gets that error.
      if (!ahead) this.entries.delete(key);
      return hit.promise;
    }
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      hit.wanted ||= !ahead;
      return hit.promise;
    }
    this.makeRoom(size);
    if (ahead && this.used + size > this.budgetBytes) return undefined;
    const entry: Entry = { size, settled: false, wanted: !ahead, promise: load(), onEvict };
    this.entries.set(key, entry);
    this.used += size;
    entry.promise.then(
      (data) => {
        entry.settled = true;
        entry.data = data;
      },
      () => {
        entry.failed = entry.settled = true;
        if (this.entries.get(key) !== entry) return;
        this.used -= size;
        entry.size = 0;
        if (entry.wanted) this.entries.delete(key);
      },
    );
    return entry.promise;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  private makeRoom(size: number): void {
    if (this.used + size <= this.budgetBytes) return;
    for (const [key, e] of this.entries) {
      if (this.used + size <= this.budgetBytes) return;
      if (!e.settled) continue;
      this.entries.delete(key);
      this.used -= e.size;
      if (e.data) e.onEvict?.(e.data);
    }
  }
}
