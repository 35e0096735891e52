/**
 * Blocks of remote files held in memory (each as the chunks its response arrived in), shared by the Hub sources of one process (or thread):
 * least recently used first out, within a byte budget. A block is fetched once however many
 * readers (or read-ahead) ask for it; in-flight blocks are never evicted, and read-ahead only
 * starts when settled blocks can make room for it, so memory stays near the budget.
 *
 * Block buffers are recycled: a dropped block's buffer (one this pool handed out with
 * `takeBuffer`) serves the next fetch. Fresh memory costs a page fault per 4 KiB and external
 * memory that drives V8's major GCs — together more CPU than the network read itself on the
 * test Hub. A block is pinned while a read copies out of it, so its buffer is never reused under it.
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
  /** Reads copying out of it now: not evicted, released or recycled meanwhile. */
  pins: number;
}

/** Recycled buffers come in powers of two from MIN_CLASS_BYTES to MAX_CLASS_BYTES; other sizes get their own. */
const MIN_CLASS_BYTES = 256 << 10;
const MAX_CLASS_BYTES = 8 << 20;

/** The capacity class of a block of `size` bytes; undefined outside the recycled range. */
function sizeClass(size: number): number | undefined {
  if (size < MIN_CLASS_BYTES / 2 || size > MAX_CLASS_BYTES) return undefined;
  let c = MIN_CLASS_BYTES;
  while (c < size) c *= 2;
  return c;
}

export class BlockPool {
  /** Map order is recency: the first entry is the least recently used. */
  private readonly entries = new Map<string, Entry>();
  private used = 0;
  private loading = 0;
  /** Buffers of dropped blocks by capacity, ready for the next fetch; counted in the budget. */
  private readonly free = new Map<number, ArrayBufferLike[]>();
  private readonly owned = new WeakSet<ArrayBufferLike>();

  constructor(readonly budgetBytes: number) {}

  /**
   * A buffer for a block of `size` bytes: a recycled one when the size is close to a block, else
   * its own. What it holds is garbage: the fetch fills it whole.
   */
  takeBuffer(size: number): Uint8Array {
    const cap = sizeClass(size);
    if (cap === undefined) return Buffer.allocUnsafeSlow(size);
    const b = this.free.get(cap)?.pop();
    if (b) {
      this.used -= cap;
      return new Uint8Array(b, 0, size);
    }
    const fresh = Buffer.allocUnsafeSlow(cap).buffer; // uninitialized: the fetch fills it
    this.owned.add(fresh);
    return new Uint8Array(fresh, 0, size);
  }

  /** A read that pinned `promise` (`get(..., pin)`) is done with the block's bytes. */
  unpin(key: string, promise: Promise<Uint8Array[]>): void {
    const e = this.entries.get(key);
    if (e && e.promise === promise && e.pins > 0) e.pins--;
  }

  /**
   * Drops settled, unread blocks (those of a tensor its reader has finished), keeping their
   * buffers for the next fetches — once the pool is past half its budget. Below that, keeping
   * them costs nothing, and a later job (the next evolve candidate) may read them again.
   */
  release(keys: Iterable<string>): void {
    if (this.used <= this.budgetBytes / 2) return;
    for (const key of keys) {
      const e = this.entries.get(key);
      if (!e || !e.settled || e.pins > 0 || e.failed) continue;
      this.drop(key, e, false);
    }
  }

  /** Bytes held or in flight (tests, metrics). */
  get bytes(): number {
    return this.used;
  }

  /** Blocks being fetched now. */
  get inFlight(): number {
    return this.loading;
  }

  /**
   * The block `key` (`size` bytes), loaded by `load` unless held or in flight. With `ahead`
   * (read-ahead) it returns undefined instead of going over the budget. `onEvict` sees the bytes
   * of a block pushed out of memory (to spill it to disk when it will be read again). With `pin`
   * the block stays until `unpin(key, promise)`.
   */
  get(
    key: string,
    size: number,
    load: () => Promise<Uint8Array[]>,
    ahead = false,
    onEvict?: (data: Uint8Array[]) => void,
    pin = false,
  ): Promise<Uint8Array[]> | undefined {
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
      if (pin) hit.pins++;
      return hit.promise;
    }
    this.makeRoom(size);
    if (ahead && this.used + size > this.budgetBytes) return undefined;
    const entry: Entry = { size, settled: false, wanted: !ahead, promise: load(), onEvict, pins: pin ? 1 : 0 };
    this.entries.set(key, entry);
    this.used += size;
    this.loading++;
    entry.promise.then(
      (data) => {
        this.loading--;
        entry.settled = true;
        entry.data = data;
      },
      () => {
        this.loading--;
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
    for (const [cap, list] of this.free) {
      while (this.used + size > this.budgetBytes && list.length) {
        list.pop();
        this.used -= cap;
      }
    }
    if (this.used + size <= this.budgetBytes) return;
    for (const [key, e] of this.entries) {
      if (this.used + size <= this.budgetBytes) return;
      if (!e.settled || e.pins > 0) continue;
      this.drop(key, e, true);
    }
  }

  private drop(key: string, e: Entry, evicted: boolean): void {
    this.entries.delete(key);
    this.used -= e.size;
    if (!e.data) return;
    if (evicted) e.onEvict?.(e.data); // synchronous: the buffer is free once it returns
    const d = e.data.length === 1 ? e.data[0] : undefined;
    if (d && d.byteOffset === 0 && this.owned.has(d.buffer)) {
      const buf = d.buffer;
      const list = this.free.get(buf.byteLength) ?? [];
      this.free.set(buf.byteLength, list);
      list.push(buf);
      this.used += buf.byteLength;
    }
  }
}
