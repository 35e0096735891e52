/**
 * Deterministic random numbers. A stream is keyed by (seed, key string) through a 64-bit FNV-1a
 * style hash, and draw j of a stream is a pure function of (key, j): a counter-based generator
 * (two keyed rounds of a 32-bit avalanche mix over the counter). So a tensor's random mask depends
 * only on the seed, its name and the element index — never on processing order, on the process,
 * or on how the tensor is cut into chunks (a chunk starting at element s draws from counter s).
 */
export function hashKey(seed: number, key: string): [number, number, number, number] {
  // splitmix32-style mixing of FNV-1a over the seed and the UTF-16 code units of the key
  let h1 = 0x811c9dc5 ^ (seed >>> 0);
  let h2 = 0x01000193 ^ Math.floor(seed / 0x100000000);
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
  }
  const out: [number, number, number, number] = [0, 0, 0, 0];
  let s = h1 ^ Math.imul(h2, 0x9e3779b9);
  for (let i = 0; i < 4; i++) {
    s = (s + 0x9e3779b9) | 0;
    let z = s ^ (h2 + i);
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    out[i] = (z ^ (z >>> 16)) >>> 0;
  }
  if ((out[0] | out[1] | out[2] | out[3]) === 0) out[0] = 1;
  return out;
}

/**
 * Draw `index` (an integer in [0, 2^53)) of the stream keyed by (k0, k1, k2): uniform in [0, 1)
 * with 24-bit resolution, like a float32 draw. Two rounds of the "lowbias32" mix (an avalanche
 * permutation of 32-bit words), each keyed, the second also folding in the counter's high word.
 */
export function uniformAt(k0: number, k1: number, k2: number, index: number): number {
  const lo = index >>> 0;
  const hi = (index / 0x100000000) >>> 0;
  let z = lo ^ k0;
  z = Math.imul(z ^ (z >>> 16), 0x7feb352d);
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b);
  z ^= z >>> 16;
  z = (z + k1) ^ Math.imul(hi ^ k2, 0x9e3779b9);
  z = Math.imul(z ^ (z >>> 16), 0x7feb352d);
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b);
  z ^= z >>> 16;
  return (z >>> 8) / 16777216;
}

/**
 * A uniform [0,1) generator for (seed, key) whose first call returns draw `start` of the stream
 * (default 0), the next draw start+1, and so on.
 */
export function createRandom(seed: number, key: string, start = 0): () => number {
  const [k0, k1, k2] = hashKey(seed, key);
  let j = start;
  return () => uniformAt(k0, k1, k2, j++);
}
