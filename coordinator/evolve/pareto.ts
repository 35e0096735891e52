/**
 * Non-dominated filtering for multi-objective search, where each candidate merge has one score
 * per evaluation task and every score is to be MAXIMISED.
 *
 * Rules:
 * - p dominates q when p scores ≥ q on every task and > on at least one.
 * - Points with identical score vectors do not dominate each other: all copies stay on the front
 *   (the caller may dedupe by item; this function never drops a point silently).
 * - NaN counts as -Infinity (a failed evaluation is worse than any score).
 * - Each front point carries its NSGA-II crowding distance (Deb et al. 2002), computed within the
 *   front: per task, the points sorted by score (ties by input order) give the two extremes
 *   Infinity and each interior point (next − previous) / (max − min); a task on which every
 *   front point scores the same contributes 0. Larger = more isolated = better to keep when the
 *   front must be truncated (see `truncateByCrowding`).
 * - The front is returned in input order.
 */
import { ParamError } from "@mergeloom/engine/errors";

export interface ParetoPoint<T> {
  scores: number[];
  item: T;
  /** Position in the input array. */
  index: number;
  crowding: number;
}

function key(v: number): number {
  return Number.isNaN(v) ? -Infinity : v;
}

/** Whether a dominates b (maximisation). */
export function dominates(a: readonly number[], b: readonly number[]): boolean {
  let strictly = false;
  for (let k = 0; k < a.length; k++) {
    const x = key(a[k]);
    const y = key(b[k]);
    if (x < y) return false;
    if (x > y) strictly = true;
  }
  return strictly;
}

/** NSGA-II crowding distances of a set of score vectors (see the module comment). */
export function crowdingDistance(scores: readonly (readonly number[])[]): number[] {
  const n = scores.length;
  const dist = new Array<number>(n).fill(0);
  if (n === 0) return dist;
  const tasks = scores[0].length;
  for (let k = 0; k < tasks; k++) {
    const order = scores.map((_, i) => i).sort((i, j) => key(scores[i][k]) - key(scores[j][k]) || i - j);
    const lo = key(scores[order[0]][k]);
    const hi = key(scores[order[n - 1]][k]);
    const span = hi - lo;
    if (!(span > 0) || !Number.isFinite(span)) continue;
    dist[order[0]] = Infinity;
    dist[order[n - 1]] = Infinity;
    for (let r = 1; r < n - 1; r++) {
      dist[order[r]] += (key(scores[order[r + 1]][k]) - key(scores[order[r - 1]][k])) / span;
    }
  }
  return dist;
}

/** The points no other point dominates, in input order, each with its crowding distance. */
export function paretoFront<T>(points: readonly { scores: number[]; item: T }[]): ParetoPoint<T>[] {
  if (points.length === 0) return [];
  const tasks = points[0].scores.length;
  points.forEach((p, i) => {
    if (p.scores.length !== tasks) {
      throw new ParamError(`compute pareto front point ${i}: has ${p.scores.length} scores, expected ${tasks} like point 0`);
    }
  });
  const front: number[] = [];
  for (let i = 0; i < points.length; i++) {
    let dominated = false;
    for (let j = 0; j < points.length && !dominated; j++) {
      if (j !== i && dominates(points[j].scores, points[i].scores)) dominated = true;
    }
    if (!dominated) front.push(i);
  }
  const crowding = crowdingDistance(front.map((i) => points[i].scores));
  return front.map((i, r) => ({ scores: [...points[i].scores], item: points[i].item, index: i, crowding: crowding[r] }));
}

/** Keeps at most `k` front points, dropping the most crowded first (ties: later input dropped first); input order kept. */
export function truncateByCrowding<T>(front: readonly ParetoPoint<T>[], k: number): ParetoPoint<T>[] {
  if (front.length <= k) return [...front];
  const keep = [...front].sort((a, b) => (b.crowding === a.crowding ? a.index - b.index : b.crowding - a.crowding)).slice(0, Math.max(0, k));
  return keep.sort((a, b) => a.index - b.index);
}
