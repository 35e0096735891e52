/**
 * Which elements torch's CPU `topk(x, k, largest=True)` returns, among equal values too
 * (aten/src/ATen/native/TopKImpl.h): (value, index) pairs compared by value only (NaN first),
 * then libstdc++'s `std::partial_sort(first, first+k, last)` when k·64 ≤ n — a heap of the first
 * k, each later element that beats the heap's top replacing it — else
 * `std::nth_element(first, first+k−1, last)` (introselect: median-of-three Hoare partitions,
 * depth limit 2·⌊log2 n⌋ with a heap-select fallback, insertion sort below 4 elements). Only the
 * set of the first k matters to mergekit's sce mask, and neither step after selection (sorting
 * the k) changes it. The primitives are the ones torch-sort.ts replays for std::sort.
 */
import { adjustHeap, floorLog2, insertionSort, pairsOf, partitionPivot, type Pairs } from "./torch-sort.js";

/** std::__heap_select(first, middle, last): the set of the (middle − first) first elements. */
function heapSelect(p: Pairs, first: number, middle: number, last: number): void {
  const len = middle - first;
  if (len >= 2)
    for (let parent = (len - 2) >> 1; ; parent--) {
      adjustHeap(p, first, parent, len, p.k[first + parent], p.i[first + parent]);
      if (parent === 0) break;
    }
  for (let i = middle; i < last; i++) {
    if (p.k[i] < p.k[first]) {
      // std::__pop_heap(first, middle, i)
      const vk = p.k[i];
      const vi = p.i[i];
      p.k[i] = p.k[first];
      p.i[i] = p.i[first];
      adjustHeap(p, first, 0, len, vk, vi);
    }
  }
}

/** std::nth_element(first, nth, last) as libstdc++'s __introselect. */
function nthElement(p: Pairs, first: number, nth: number, last: number): void {
  if (first === last || nth === last) return;
  let depth = 2 * floorLog2(last - first);
  while (last - first > 3) {
    if (depth === 0) {
      heapSelect(p, first, nth + 1, last);
      const k = p.k[first];
      const i = p.i[first];
      p.k[first] = p.k[nth];
      p.i[first] = p.i[nth];
      p.k[nth] = k;
      p.i[nth] = i;
      return;
    }
    depth--;
    const cut = partitionPivot(p, first, last);
    if (cut <= nth) first = cut;
    else last = cut;
  }
  insertionSort(p, first, last);
}

/** mask[j] = 1 when `torch.topk(x, k, largest=True).indices` holds j, for n values `get(j)`. */
export function topkLargestMask(n: number, get: (j: number) => number, k: number): Uint8Array {
  const mask = new Uint8Array(n);
  k = Math.max(0, Math.min(n, k));
  if (k === 0) return mask;
  const p = pairsOf(n, get, true);
  if (k * 64 <= n) heapSelect(p, 0, k, n);
  else nthElement(p, 0, k - 1, n);
  for (let j = 0; j < k; j++) mask[p.i[j]] = 1;
  return mask;
}
