/**
 * Blocks of remote files held in memory (each as the chunks its response arrived in), shared by the Hub sources of one process (or thread):
 * least recently used first out, within a byte budget. A block is fetched once however many
 * readers (or read-ahead) ask for it; in-flight blocks are never evicted, and read-ahead only
 * starts when settled blocks can make room for it, so memory stays near the budget.
 *
 * Which blocks make room, first to last: recycled buffers; blocks no job claims any more (left
 * from finished jobs); blocks claimed by a job that is not reading them now (the thread's next
 * job, prefetched); then blocks of the tensor being read (a multi-pass method reads them again:
 * they go to the disk cache via `onEvict`). Read-ahead for a tensor not being read — the next
 * job's prefetch — stops at the second: it must not push out the current job's blocks, which a
 * TIES or DARE pass is about to read again (measured: a 280 MB round trip through the disk cache
 * per merge of the 3 × 1 GB bench set, ~2 s of a 12 s Hub merge).
 *
 * Block buffers are recycled: a dropped block's buffer (one this pool handed out) serves the next
 * fetch — the fetch that made room takes it first. Fresh memory costs a page fault per 4 KiB and
 * external memory that drives V8's major GCs — together more CPU than the network read itself on
 * the test Hub. A block is pinned while a read copies out of it, so its buffer is never reused under it.
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
  /** A job asked for it and has not finished (`release`): read-ahead for other tensors leaves it alone. */
  claimed: boolean;
  /** Whether its tensor is being read now (a later pass will read the block again). */
  live?: () => boolean;
}

export interface BlockRequest {
  /** Read-ahead: returns undefined rather than go over the budget. */
  ahead?: boolean;
  /** Sees the bytes of a block pushed out of memory (to spill it to disk when it will be read again). */
  onEvict?: (data: Uint8Array[]) => void;
  /** The block stays until `unpin(key, promise)`. */
  pin?: boolean;
  /** Whether the requester's tensor is being read now; see the eviction order above. */
  live?: () => boolean;
}

/** Gives a block's buffer: `n` bytes, filled whole by the fetch. */
export type BlockAlloc = (n: number) => Uint8Array;

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
    const b = this.popFree(cap);
    if (b) return new Uint8Array(b, 0, size);
    const fresh = Buffer.allocUnsafeSlow(cap).buffer; // uninitialized: the fetch fills it
    this.owned.add(fresh);
    return new Uint8Array(fresh, 0, size);
  }

  /** A recycled buffer of capacity `cap`, no longer counted as free. */
  private popFree(cap: number | undefined): ArrayBufferLike | undefined {
    const b = cap === undefined ? undefined : this.free.get(cap)?.pop();
    if (b) this.used -= b.byteLength;
    return b;
  }

  /** A read that pinned `promise` (`get` with `pin`) is done with the block's bytes. */
  unpin(key: string, promise: Promise<Uint8Array[]>): void {
    const e = this.entries.get(key);
    if (e && e.promise === promise && e.pins > 0) e.pins--;
  }

  /**
   * A job is done with these blocks: drops the settled ones, keeping their buffers for the next
   * fetches — once the pool is past half its budget. Below that, keeping them costs nothing, and a
   * later job (the next evolve candidate) may read them again; they are the first to make room.
   */
  release(keys: Iterable<string>): void {
    const drop = this.used > this.budgetBytes / 2;
    for (const key of keys) {
      const e = this.entries.get(key);
      if (!e) continue;
      e.claimed = false;
      if (drop && e.settled && e.pins === 0 && !e.failed) this.drop(key, e, false);
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
   * The block `key` (`size` bytes), loaded by `load` unless held or in flight. `load` takes its
   * buffer from `alloc` (a recycled one when there is one). See `BlockRequest` for the options.
   */
  get(key: string, size: number, load: (alloc: BlockAlloc) => Promise<Uint8Array[]>, req: BlockRequest = {}): Promise<Uint8Array[]> | undefined {
    const { ahead = false, onEvict, pin = false, live } = req;
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
      hit.claimed = true;
      if (live) hit.live = live;
      if (pin) hit.pins++;
      return hit.promise;
    }
    const cap = sizeClass(size);
    let reserved = this.makeRoom(size, cap, !ahead || live?.() === true);
    if (ahead && this.used + size > this.budgetBytes) {
      if (reserved) this.keepFree(reserved);
      return undefined;
    }
    const alloc: BlockAlloc = (n) => {
      const b = reserved;
      if (b && sizeClass(n) === cap) {
        reserved = undefined;
        return new Uint8Array(b, 0, n);
      }
      return this.takeBuffer(n);
    };
    const entry: Entry = { size, settled: false, wanted: !ahead, promise: load(alloc), onEvict, pins: pin ? 1 : 0, claimed: true, live };
    this.entries.set(key, entry);
    this.used += size;
    this.loading++;
    const unused = () => {
      // Served without the buffer (the disk cache had the block): kept for the next fetch if it fits.
      if (reserved && this.used + reserved.byteLength <= this.budgetBytes) this.keepFree(reserved);
      reserved = undefined;
    };
    entry.promise.then(
      (data) => {
        unused();
        this.loading--;
        entry.settled = true;
        entry.data = data;
      },
      () => {
        unused();
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

  /**
   * Frees room for `size` bytes in the order the header describes — blocks of jobs (claimed) only
   * when `claimed` is set: the request is a read, or read-ahead of the tensor being read — and
   * returns a recycled buffer of capacity `cap` for the fetch when there is one (taken first, and
   * from the evicted blocks: making room must not throw away the buffer the fetch then needs).
   */
  private makeRoom(size: number, cap: number | undefined, claimed: boolean): ArrayBufferLike | undefined {
    let reserved = this.popFree(cap);
    const fits = () => this.used + size <= this.budgetBytes;
    const trimFree = () => {
      for (const [c, list] of this.free) {
        while (!fits() && list.length) {
          list.pop();
          this.used -= c;
        }
      }
    };
    trimFree();
    const tiers: ((e: Entry) => boolean)[] = [(e) => !e.claimed];
    if (claimed)
      tiers.push(
        (e) => !e.live?.(),
        () => true,
      );
    for (const inTier of tiers) {
      for (const [key, e] of this.entries) {
        if (fits()) return reserved;
        if (!e.settled || e.pins > 0 || !inTier(e)) continue;
        this.drop(key, e, true); // its buffer goes to the free list…
        reserved ??= this.popFree(cap); // …for this fetch, or to be given up for room
        trimFree();
      }
    }
    return reserved;
  }

  private keepFree(buf: ArrayBufferLike): void {
    const list = this.free.get(buf.byteLength) ?? [];
    this.free.set(buf.byteLength, list);
    list.push(buf);
    this.used += buf.byteLength;
  }

  private drop(key: string, e: Entry, evicted: boolean): void {
    this.entries.delete(key);
    this.used -= e.size;
    if (!e.data) return;
    if (evicted) e.onEvict?.(e.data); // synchronous: the buffer is free once it returns
    const d = e.data.length === 1 ? e.data[0] : undefined;
    if (d && d.byteOffset === 0 && this.owned.has(d.buffer)) this.keepFree(d.buffer);
  }
}
