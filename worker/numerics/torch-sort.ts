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

/** comp(a, b): a strictly before b (torch's comparators, NaN greatest). */
type Less = (a: number, b: number) => boolean;
const lessAsc: Less = (a, b) => (a < b) || (a === a && b !== b);
const lessDesc: Less = (a, b) => (a > b) || (a !== a && b === b);

/** Working arrays: keys and original indices, swapped together as torch's composite accessor does. */
interface Pairs {
  k: Float32Array;
  i: Int32Array;
}

function swap(p: Pairs, a: number, b: number): void {
  const k = p.k[a];
  p.k[a] = p.k[b];
  p.k[b] = k;
  const i = p.i[a];
  p.i[a] = p.i[b];
  p.i[b] = i;
}

function floorLog2(n: number): number {
  return 31 - Math.clz32(n);
}

/** std::__move_median_to_first(result, a, b, c). */
function moveMedianToFirst(p: Pairs, result: number, a: number, b: number, c: number, less: Less): void {
  const k = p.k;
  if (less(k[a], k[b])) {
    if (less(k[b], k[c])) swap(p, result, b);
    else if (less(k[a], k[c])) swap(p, result, c);
    else swap(p, result, a);
  } else if (less(k[a], k[c])) swap(p, result, a);
  else if (less(k[b], k[c])) swap(p, result, c);
  else swap(p, result, b);
}

/** std::__unguarded_partition_pivot: returns the cut. */
function partitionPivot(p: Pairs, first: number, last: number, less: Less): number {
  const mid = first + ((last - first) >> 1);
  moveMedianToFirst(p, first, first + 1, mid, last - 1, less);
  const k = p.k;
  const pivot = k[first];
  let lo = first + 1;
  let hi = last;
  for (;;) {
    while (less(k[lo], pivot)) lo++;
    hi--;
    while (less(pivot, k[hi])) hi--;
    if (!(lo < hi)) return lo;
    swap(p, lo, hi);
    lo++;
  }
}

/** std::__adjust_heap over [first, first+len) with the hole at `hole` and value (vk, vi). */
function adjustHeap(p: Pairs, first: number, hole: number, len: number, vk: number, vi: number, less: Less): void {
  const k = p.k;
  const ix = p.i;
  const top = hole;
  let second = hole;
  while (second < ((len - 1) >> 1)) {
    second = 2 * (second + 1);
    if (less(k[first + second], k[first + second - 1])) second--;
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
  while (hole > top && less(k[first + parent], vk)) {
    k[first + hole] = k[first + parent];
    ix[first + hole] = ix[first + parent];
    hole = parent;
    parent = (hole - 1) >> 1;
  }
  k[first + hole] = vk;
  ix[first + hole] = vi;
}

/** std::__partial_sort(first, last, last): make_heap then sort_heap. */
function heapSort(p: Pairs, first: number, last: number, less: Less): void {
  const len = last - first;
  if (len < 2) return;
  for (let parent = (len - 2) >> 1; ; parent--) {
    adjustHeap(p, first, parent, len, p.k[first + parent], p.i[first + parent], less);
    if (parent === 0) break;
  }
  for (let end = last; end - first > 1; ) {
    end--;
    const vk = p.k[end];
    const vi = p.i[end];
    p.k[end] = p.k[first];
    p.i[end] = p.i[first];
    adjustHeap(p, first, 0, end - first, vk, vi, less);
  }
}

/** Insertion sort of [first, last): what libstdc++'s final insertion sort does inside one leaf. */
function insertionSort(p: Pairs, first: number, last: number, less: Less): void {
  const k = p.k;
  const ix = p.i;
  for (let a = first + 1; a < last; a++) {
    const vk = k[a];
    const vi = ix[a];
    let b = a;
    while (b > first && less(vk, k[b - 1])) {
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
function introsort(p: Pairs, n: number, less: Less, needed: (first: number, last: number) => boolean): void {
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
        heapSort(p, first, last, less);
        last = first; // sorted; nothing left for the insertion pass
        break;
      }
      depth--;
      const cut = partitionPivot(p, first, last, less);
      stack.push(cut, last, depth);
      last = cut;
    }
    if (last - first > 1 && last - first <= THRESHOLD && needed(first, last)) insertionSort(p, first, last, less);
  }
}

function pairsOf(keys: ArrayLike<number>): Pairs {
  const n = keys.length;
  const k = Float32Array.from(keys);
  const i = new Int32Array(n);
  for (let j = 0; j < n; j++) i[j] = j;
  return { k, i };
}

/** The full permutation `torch.sort(keys, descending).indices` gives (for tests and small inputs). */
export function torchArgsort(keys: ArrayLike<number>, descending: boolean): Int32Array {
  const p = pairsOf(keys);
  introsort(p, keys.length, descending ? lessDesc : lessAsc, () => true);
  return p.i;
}

/**
 * mask[j] = 1 when element j lands at a position in [from, to) of `torch.sort(keys, descending)`
 * (so `argsort(|δ|, descending=True)[:k]` is `sortedRangeMask(|δ|, true, 0, k)`). Equal to the
 * full sort's answer; only ranges straddling `from` or `to` are sorted.
 */
export function sortedRangeMask(keys: ArrayLike<number>, descending: boolean, from: number, to: number): Uint8Array {
  const n = keys.length;
  const mask = new Uint8Array(n);
  from = Math.max(0, Math.min(n, from));
  to = Math.max(from, Math.min(n, to));
  if (from === to) return mask;
  const p = pairsOf(keys);
  const straddles = (a: number, b: number) => (a < from && from < b) || (a < to && to < b);
  introsort(p, n, descending ? lessDesc : lessAsc, straddles);
  for (let j = from; j < to; j++) mask[p.i[j]] = 1;
  return mask;
}
