/**
 * The order torch's CPU `sort`/`argsort` (unstable, the default) gives among equal keys.
 *
 * torch sorts a CPU tensor with `std::sort` over (value, index) pairs compared by value only
 * (aten/src/ATen/native/cpu/SortingKernel.cpp, KeyValueCompAsc/KeyValueCompDesc: NaN sorts as the
 * largest value). Built with GCC, that is libstdc++'s introsort: median-of-three pivot moved to
 * the front, unguarded Hoare partition, depth limit 2·⌊log2 n⌋ with a heapsort fallback, and a
 * final insertion sort over runs of at most 16. Ties land wherever that algorithm leaves them,
 * which is neither index order nor reversed; mergekit's magnitude sparsifiers take a prefix of
 * such an order, so reproducing mergekit means replaying the algorithm step for step.
 *
 * Only the *set* of elements that ends up in a range of positions matters to the sparsifiers, and
 * an introsort never moves an element across a partition cut, so `sortedRangeMask` replays only
 * the sub-ranges that straddle a boundary of the wanted range: a quickselect's expected O(n)
 * instead of O(n log n), with the same result as the full sort.
 */

const THRESHOLD = 16;

/**
 * Working arrays: order keys and original indices, swapped together as torch's composite
 * accessor does. A key is a uint32 whose `<` is torch's comparator on the float: ascending by
 * value, −0 equal to +0, every NaN equal and greatest; for a descending sort the keys are
 * complemented, so one ascending replay serves both and compares plain integers.
 */
export interface Pairs {
  k: Uint32Array;
  i: Int32Array;
}

const fb = new Float32Array(1);
const ub = new Uint32Array(fb.buffer);
function orderKey(v: number): number {
  if (v !== v) return 0xffffffff;
  fb[0] = v === 0 ? 0 : v;
  const b = ub[0];
  return (b & 0x80000000 ? ~b : b | 0x80000000) >>> 0;
}

function swap(p: Pairs, a: number, b: number): void {
  const k = p.k[a];
  p.k[a] = p.k[b];
  p.k[b] = k;
  const i = p.i[a];
  p.i[a] = p.i[b];
  p.i[b] = i;
}

export function floorLog2(n: number): number {
  return 31 - Math.clz32(n);
}

/** std::__move_median_to_first(result, a, b, c). */
function moveMedianToFirst(p: Pairs, result: number, a: number, b: number, c: number): void {
  const k = p.k;
  if (k[a] < k[b]) {
    if (k[b] < k[c]) swap(p, result, b);
    else if (k[a] < k[c]) swap(p, result, c);
    else swap(p, result, a);
  } else if (k[a] < k[c]) swap(p, result, a);
  else if (k[b] < k[c]) swap(p, result, c);
  else swap(p, result, b);
}

/** std::__unguarded_partition_pivot: returns the cut. */
export function partitionPivot(p: Pairs, first: number, last: number): number {
  const mid = first + ((last - first) >> 1);
  moveMedianToFirst(p, first, first + 1, mid, last - 1);
  const k = p.k;
  const ix = p.i;
  const pivot = k[first];
  let lo = first + 1;
  let hi = last;
  for (;;) {
    while (k[lo] < pivot) lo++;
    hi--;
    while (pivot < k[hi]) hi--;
    if (!(lo < hi)) return lo;
    const t = k[lo];
    k[lo] = k[hi];
    k[hi] = t;
    const u = ix[lo];
    ix[lo] = ix[hi];
    ix[hi] = u;
    lo++;
  }
}

/** std::__adjust_heap over [first, first+len) with the hole at `hole` and value (vk, vi). */
export function adjustHeap(p: Pairs, first: number, hole: number, len: number, vk: number, vi: number): void {
  const k = p.k;
  const ix = p.i;
  const top = hole;
  let second = hole;
  while (second < (len - 1) >> 1) {
    second = 2 * (second + 1);
    if (k[first + second] < k[first + second - 1]) second--;
    k[first + hole] = k[first + second];
    ix[first + hole] = ix[first + second];
    hole = second;
  }
  if ((len & 1) === 0 && second === (len - 2) >> 1) {
    second = 2 * (second + 1);
    k[first + hole] = k[first + second - 1];
    ix[first + hole] = ix[first + second - 1];
    hole = second - 1;
  }
  // std::__push_heap
  let parent = (hole - 1) >> 1;
  while (hole > top && k[first + parent] < vk) {
    k[first + hole] = k[first + parent];
    ix[first + hole] = ix[first + parent];
    hole = parent;
    parent = (hole - 1) >> 1;
  }
  k[first + hole] = vk;
  ix[first + hole] = vi;
}

/** std::__partial_sort(first, last, last): make_heap then sort_heap. */
function heapSort(p: Pairs, first: number, last: number): void {
  const len = last - first;
  if (len < 2) return;
  for (let parent = (len - 2) >> 1; ; parent--) {
    adjustHeap(p, first, parent, len, p.k[first + parent], p.i[first + parent]);
    if (parent === 0) break;
  }
  for (let end = last; end - first > 1;) {
    end--;
    const vk = p.k[end];
    const vi = p.i[end];
    p.k[end] = p.k[first];
    p.i[end] = p.i[first];
    adjustHeap(p, first, 0, end - first, vk, vi);
  }
}

/** Insertion sort of [first, last): what libstdc++'s final insertion sort does inside one leaf. */
export function insertionSort(p: Pairs, first: number, last: number): void {
  const k = p.k;
  const ix = p.i;
  for (let a = first + 1; a < last; a++) {
    const vk = k[a];
    const vi = ix[a];
    let b = a;
    while (b > first && vk < k[b - 1]) {
      k[b] = k[b - 1];
      ix[b] = ix[b - 1];
      b--;
    }
    k[b] = vk;
    ix[b] = vi;
  }
}

/**
 * Replays std::sort on [0, n) but only descends into ranges for which `needed(first, last)` holds;
 * the others keep their elements (as a set) but not their final order.
 */
function introsort(p: Pairs, n: number, needed: (first: number, last: number) => boolean): void {
  if (n === 0) return;
  const stack: number[] = [0, n, 2 * floorLog2(n)];
  while (stack.length) {
    const depth0 = stack.pop()!;
    let last = stack.pop()!;
    const first = stack.pop()!;
    let depth = depth0;
    // std::__introsort_loop: loop on the left part, recurse on the right.
    while (last - first > THRESHOLD) {
      if (!needed(first, last)) break;
      if (depth === 0) {
        heapSort(p, first, last);
        last = first; // sorted; nothing left for the insertion pass
        break;
      }
      depth--;
      const cut = partitionPivot(p, first, last);
      stack.push(cut, last, depth);
      last = cut;
    }
    if (last - first > 1 && last - first <= THRESHOLD && needed(first, last)) insertionSort(p, first, last);
  }
}

/** Pairs for `n` keys `get(j)` (floats), complemented for a descending sort. */
export function pairsOf(n: number, get: (j: number) => number, descending: boolean): Pairs {
  const k = new Uint32Array(n);
  const i = new Int32Array(n);
  for (let j = 0; j < n; j++) {
    k[j] = descending ? ~orderKey(get(j)) >>> 0 : orderKey(get(j));
    i[j] = j;
  }
  return { k, i };
}

/** The full permutation `torch.sort(keys, descending).indices` gives (for tests and small inputs). */
export function torchArgsort(keys: ArrayLike<number>, descending: boolean): Int32Array {
  const p = pairsOf(keys.length, (j) => keys[j], descending);
  introsort(p, keys.length, () => true);
  return p.i;
}

/**
 * mask[j] = 1 when element j lands at a position in [from, to) of `torch.sort(keys, descending)`
 * (so `argsort(|δ|, descending=True)[:k]` is `sortedRangeMask(n, j => |δ[j]|, true, 0, k)`).
 * Equal to the full sort's answer; only ranges straddling `from` or `to` are sorted. Memory:
 * 8 bytes per element (key and index) plus the 1-byte mask.
 */
export function sortedRangeMask(keys: ArrayLike<number>, descending: boolean, from: number, to: number): Uint8Array {
  return sortedRangeMaskOf(keys.length, (j) => keys[j], descending, from, to);
}

export function sortedRangeMaskOf(n: number, get: (j: number) => number, descending: boolean, from: number, to: number): Uint8Array {
  const mask = new Uint8Array(n);
  from = Math.max(0, Math.min(n, from));
  to = Math.max(from, Math.min(n, to));
  if (from === to) return mask;
  const p = pairsOf(n, get, descending);
  const straddles = (a: number, b: number) => (a < from && from < b) || (a < to && to < b);
  introsort(p, n, straddles);
  for (let j = from; j < to; j++) mask[p.i[j]] = 1;
  return mask;
}
