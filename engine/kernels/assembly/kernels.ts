// AssemblyScript source of the WebAssembly SIMD kernels (compiled by `npm run build:kernels`).
// Every kernel reproduces, operation for operation, the TypeScript loop it replaces (named at
// each export), so outputs are bit-identical; the tests compare both paths on the same inputs.
// Pointers are byte offsets in this module's memory; `n` counts elements.

const ABS: u32 = 0x7fffffff;

/** Where the JS side may start allocating (after this module's static data). */
export const HEAP_BASE: usize = __heap_base;

// --- bf16 helpers -------------------------------------------------------------------------

/** 4 bf16 at p → f32x4 (a shift: exact). */
// @ts-ignore: decorator
@inline function ld4(p: usize): v128 {
  return i32x4.shl(i32x4.extend_low_i16x8_u(v128.load64_zero(p)), 16);
}

// @ts-ignore: decorator
@inline function bf16At(p: usize): f32 {
  return reinterpret<f32>(<u32>load<u16>(p) << 16);
}

/** f32 bits → bf16 with round-to-nearest-even; NaN keeps its sign and becomes quiet (torch). */
// @ts-ignore: decorator
@inline function rne4(bits: v128): v128 {
  const isNan = i32x4.gt_u(v128.and(bits, i32x4.splat(ABS)), i32x4.splat(0x7f800000));
  const hi = i32x4.shr_u(bits, 16);
  const rounded = i32x4.shr_u(i32x4.add(i32x4.add(bits, i32x4.splat(0x7fff)), v128.and(hi, i32x4.splat(1))), 16);
  return v128.bitselect(v128.or(hi, i32x4.splat(0x40)), rounded, isNan);
}

// @ts-ignore: decorator
@inline function rne1(b: u32): u16 {
  return (b & ABS) > 0x7f800000 ? <u16>((b >>> 16) | 0x40) : <u16>((b + 0x7fff + ((b >>> 16) & 1)) >>> 16);
}

/** Stores 4 i32 lanes (each < 2^16) as 4 u16 at p. */
// @ts-ignore: decorator
@inline function st4(p: usize, v: v128): void {
  v128.store64_lane(p, i16x8.narrow_i32x4_u(v, v), 0);
}

// --- linear -------------------------------------------------------------------------------

/**
 * methods/linear.ts `merge` on bf16 inputs, to bf16: out = bf16(f32(Σ f32(w_i·x_i)) / div), the
 * products and sums in fp32 in input order from the first product, the division skipped when div
 * is 1. `srcs` holds m u32 pointers to bf16 inputs, `ws` m f32 weights.
 */
export function linearBF16(out: usize, srcs: usize, ws: usize, m: i32, n: i32, div: f32): void {
  const n4 = n & ~3;
  const dv = f32x4.splat(div);
  const divide = div != 1;
  const x0 = <usize>load<u32>(srcs);
  const w0 = f32x4.splat(load<f32>(ws));
  for (let k = 0; k < n4; k += 4) {
    const off = <usize>k << 1;
    let acc = f32x4.mul(w0, ld4(x0 + off));
    for (let i = 1; i < m; i++) {
      acc = f32x4.add(acc, f32x4.mul(f32x4.splat(load<f32>(ws + (<usize>i << 2))), ld4(<usize>load<u32>(srcs + (<usize>i << 2)) + off)));
    }
    if (divide) acc = f32x4.div(acc, dv);
    st4(out + off, rne4(acc));
  }
  for (let k = n4; k < n; k++) {
    const off = <usize>k << 1;
    let acc: f32 = load<f32>(ws) * bf16At(x0 + off);
    for (let i = 1; i < m; i++) acc += load<f32>(ws + (<usize>i << 2)) * bf16At(<usize>load<u32>(srcs + (<usize>i << 2)) + off);
    if (divide) acc /= div;
    store<u16>(out + off, rne1(reinterpret<u32>(acc)));
  }
}

// --- generalized task arithmetic (methods/gta-stream.ts, gta-selectors.ts, key-masks.ts) -----

/** d = f32(x) − f32(b) from bf16 inputs. */
export function deltaBF16(d: usize, x: usize, b: usize, n: i32): void {
  const n4 = n & ~3;
  for (let k = 0; k < n4; k += 4) {
    v128.store(d + (<usize>k << 2), f32x4.sub(ld4(x + (<usize>k << 1)), ld4(b + (<usize>k << 1))));
  }
  for (let k = n4; k < n; k++) store<f32>(d + (<usize>k << 2), bf16At(x + (<usize>k << 1)) - bf16At(b + (<usize>k << 1)));
}

/** random.ts `uniformAt`'s 32-bit hash of counter i (high word 0), as maskRandom inlines it. */
// @ts-ignore: decorator
@inline function hash4(i: v128, k0: v128, k1: v128, mk: v128): v128 {
  let z = v128.xor(i, k0);
  z = i32x4.mul(v128.xor(z, i32x4.shr_u(z, 16)), i32x4.splat(0x7feb352d));
  z = i32x4.mul(v128.xor(z, i32x4.shr_u(z, 15)), i32x4.splat(<i32>0x846ca68b));
  z = v128.xor(z, i32x4.shr_u(z, 16));
  z = v128.xor(i32x4.add(z, k1), mk);
  z = i32x4.mul(v128.xor(z, i32x4.shr_u(z, 16)), i32x4.splat(0x7feb352d));
  z = i32x4.mul(v128.xor(z, i32x4.shr_u(z, 15)), i32x4.splat(<i32>0x846ca68b));
  return v128.xor(z, i32x4.shr_u(z, 16));
}

// @ts-ignore: decorator
@inline function hash1(i: u32, k0: u32, k1: u32, mk: u32): u32 {
  let z = i ^ k0;
  z = (z ^ (z >>> 16)) * 0x7feb352d;
  z = (z ^ (z >>> 15)) * 0x846ca68b;
  z ^= z >>> 16;
  z = (z + k1) ^ mk;
  z = (z ^ (z >>> 16)) * 0x7feb352d;
  z = (z ^ (z >>> 15)) * 0x846ca68b;
  return z ^ (z >>> 16);
}

/** DARE's keep mask of elements start…start+n−1: all ones where the draw is below `thr`. */
// @ts-ignore: decorator
@inline function keep4(idx: v128, k0: v128, k1: v128, mk: v128, thr: v128): v128 {
  return i32x4.shr_s(i32x4.sub(i32x4.shr_u(hash4(idx, k0, k1, mk), 8), thr), 31);
}

/** gta-selectors.ts DARE `maskBlock`: d's bits &= keep, element j drawing counter start + j. */
export function maskRandom(d: usize, n: i32, k0: u32, k1: u32, mk: u32, thr: u32, start: u32): void {
  const n4 = n & ~3;
  const vk0 = i32x4.splat(k0);
  const vk1 = i32x4.splat(k1);
  const vmk = i32x4.splat(mk);
  const vthr = i32x4.splat(thr);
  let idx = i32x4.add(i32x4.splat(start), i32x4(0, 1, 2, 3));
  const four = i32x4.splat(4);
  for (let k = 0; k < n4; k += 4) {
    const p = d + (<usize>k << 2);
    v128.store(p, v128.and(v128.load(p), keep4(idx, vk0, vk1, vmk, vthr)));
    idx = i32x4.add(idx, four);
  }
  for (let k = n4; k < n; k++) {
    const p = d + (<usize>k << 2);
    const z = hash1(start + <u32>k, k0, k1, mk);
    store<u32>(p, load<u32>(p) & <u32>((<i32>(z >>> 8) - <i32>thr) >> 31));
  }
}

/** s + Σ|d| in float64, index order. */
export function l1(d: usize, n: i32, s: f64): f64 {
  for (let k = 0; k < n; k++) s += <f64>Mathf.abs(load<f32>(d + (<usize>k << 2)));
  return s;
}

/**
 * key-masks.ts `TopKMask.apply`: keep |d| keys above t; of the keys equal to t keep the
 * first `tiesLeft` in index order. Returns the ties still to keep.
 */
export function maskMagnitude(d: usize, n: i32, t: u32, tiesLeft: i32): i32 {
  const n4 = n & ~3;
  const vt = i32x4.splat(t);
  const abs = i32x4.splat(ABS);
  for (let k = 0; k < n4; k += 4) {
    const p = d + (<usize>k << 2);
    const raw = v128.load(p);
    const b = v128.and(raw, abs);
    if (v128.any_true(i32x4.eq(b, vt))) {
      tiesLeft = maskMagnitudeScalar(d, k, k + 4, t, tiesLeft);
      continue;
    }
    v128.store(p, v128.and(raw, i32x4.gt_s(b, vt)));
  }
  return maskMagnitudeScalar(d, n4, n, t, tiesLeft);
}

function maskMagnitudeScalar(d: usize, from: i32, to: i32, t: u32, tiesLeft: i32): i32 {
  for (let k = from; k < to; k++) {
    const p = d + (<usize>k << 2);
    const b = load<u32>(p) & ABS;
    if (b == t) {
      if (tiesLeft > 0) tiesLeft--;
      else store<u32>(p, 0);
    } else if (b < t) store<u32>(p, 0);
  }
  return tiesLeft;
}

/**
 * key-masks.ts `KeyRangeMask.apply`: keep lk ≤ |d| key ≤ hk, dropping the first `skipLow`
 * keys equal to lk and keeping the first `keepHigh` equal to hk. state = [tl, th] (i32), running.
 */
export function maskOutliers(d: usize, n: i32, lk: u32, hk: u32, skipLow: i32, keepHigh: i32, state: usize): void {
  const n4 = n & ~3;
  const vl = i32x4.splat(lk);
  const vh = i32x4.splat(hk);
  const abs = i32x4.splat(ABS);
  for (let k = 0; k < n4; k += 4) {
    const p = d + (<usize>k << 2);
    const raw = v128.load(p);
    const b = v128.and(raw, abs);
    if (v128.any_true(v128.or(i32x4.eq(b, vl), i32x4.eq(b, vh)))) {
      maskOutliersScalar(d, k, k + 4, lk, hk, skipLow, keepHigh, state);
      continue;
    }
    v128.store(p, v128.and(raw, v128.and(i32x4.ge_s(b, vl), i32x4.le_s(b, vh))));
  }
  maskOutliersScalar(d, n4, n, lk, hk, skipLow, keepHigh, state);
}

function maskOutliersScalar(d: usize, from: i32, to: i32, lk: u32, hk: u32, skipLow: i32, keepHigh: i32, state: usize): void {
  let tl = load<i32>(state);
  let th = load<i32>(state, 4);
  for (let k = from; k < to; k++) {
    const p = d + (<usize>k << 2);
    const b = load<u32>(p) & ABS;
    let keep = b >= lk && b <= hk;
    if (b == lk) {
      if (tl < skipLow) keep = false;
      tl++;
    }
    if (b == hk) {
      if (th >= keepHigh) keep = false;
      th++;
    }
    if (!keep) store<u32>(p, 0);
  }
  store<i32>(state, tl);
  store<i32>(state, th, 4);
}

/** d = f32(f64(d)·r): JS's `d[k] *= r` on a Float32Array with a float64 r. */
export function scaleF64(d: usize, n: i32, r: f64): void {
  const n4 = n & ~3;
  const vr = f64x2.splat(r);
  for (let k = 0; k < n4; k += 4) {
    const p = d + (<usize>k << 2);
    const x = v128.load(p);
    const lo = f64x2.mul(f64x2.promote_low_f32x4(x), vr);
    const hi = f64x2.mul(f64x2.promote_low_f32x4(i32x4.shuffle(x, x, 2, 3, 0, 1)), vr);
    v128.store(p, i32x4.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5));
  }
  for (let k = n4; k < n; k++) store<f32>(d + (<usize>k << 2), <f32>(<f64>load<f32>(d + (<usize>k << 2)) * r));
}

/**
 * generalized-task-arithmetic.ts `mixTaskVectors` with sign consensus: x_i = f32(w_i·d_i);
 * total = Σx_i (fp32, model order, from +0); elected sign + where total ≥ 0 (NaN: −); mix = Σ of
 * the x_i with the elected sign (nonzero), divided (when normalize) by the sum of their weights
 * unless that is 0 or 1. ds: m u32 pointers; ws: m f32 weights.
 */
export function mixConsensus(mix: usize, ds: usize, ws: usize, m: i32, n: i32, normalize: bool): void {
  const n4 = n & ~3;
  const zero = f32x4.splat(0);
  const one = f32x4.splat(1);
  const norm = i32x4.splat(normalize ? -1 : 0);
  for (let k = 0; k < n4; k += 4) {
    const off = <usize>k << 2;
    let total = zero;
    for (let i = 0; i < m; i++) {
      const x = f32x4.mul(v128.load(<usize>load<u32>(ds + (<usize>i << 2)) + off), f32x4.splat(load<f32>(ws + (<usize>i << 2))));
      total = f32x4.add(total, x);
    }
    const pos = f32x4.ge(total, zero);
    let mx = zero;
    let dv = zero;
    for (let i = 0; i < m; i++) {
      const w = f32x4.splat(load<f32>(ws + (<usize>i << 2)));
      const x = f32x4.mul(v128.load(<usize>load<u32>(ds + (<usize>i << 2)) + off), w);
      const sel = v128.bitselect(f32x4.gt(x, zero), f32x4.lt(x, zero), pos);
      mx = f32x4.add(mx, v128.and(x, sel));
      dv = f32x4.add(dv, v128.and(w, sel));
    }
    const divide = v128.and(norm, v128.and(f32x4.ne(dv, zero), f32x4.ne(dv, one)));
    v128.store(mix + off, v128.bitselect(f32x4.div(mx, dv), mx, divide));
  }
  for (let k = n4; k < n; k++) {
    const off = <usize>k << 2;
    let total: f32 = 0;
    for (let i = 0; i < m; i++) total += load<f32>(<usize>load<u32>(ds + (<usize>i << 2)) + off) * load<f32>(ws + (<usize>i << 2));
    const pos = total >= 0;
    let mx: f32 = 0;
    let dv: f32 = 0;
    for (let i = 0; i < m; i++) {
      const w = load<f32>(ws + (<usize>i << 2));
      const x = load<f32>(<usize>load<u32>(ds + (<usize>i << 2)) + off) * w;
      const sel = pos ? x > 0 : x < 0;
      mx += sel ? x : 0;
      dv += sel ? w : 0;
    }
    store<f32>(mix + off, normalize && dv != 0 && dv != 1 ? mx / dv : mx);
  }
}

/** `mixTaskVectors` without consensus: mix = Σ f32(w_i·d_i) (from +0), then / div unless div is 1. */
export function mixSum(mix: usize, ds: usize, ws: usize, m: i32, n: i32, div: f32): void {
  const n4 = n & ~3;
  const vdiv = f32x4.splat(div);
  for (let k = 0; k < n4; k += 4) {
    const off = <usize>k << 2;
    let acc = f32x4.splat(0);
    for (let i = 0; i < m; i++) {
      acc = f32x4.add(acc, f32x4.mul(v128.load(<usize>load<u32>(ds + (<usize>i << 2)) + off), f32x4.splat(load<f32>(ws + (<usize>i << 2)))));
    }
    v128.store(mix + off, div == 1 ? acc : f32x4.div(acc, vdiv));
  }
  for (let k = n4; k < n; k++) {
    const off = <usize>k << 2;
    let acc: f32 = 0;
    for (let i = 0; i < m; i++) acc += load<f32>(<usize>load<u32>(ds + (<usize>i << 2)) + off) * load<f32>(ws + (<usize>i << 2));
    store<f32>(mix + off, div == 1 ? acc : acc / div);
  }
}

/**
 * `addScaled` then the bf16 encoding: out = bf16(f32(B + f32(λ·mix))), or bf16(f32(mix + B)) when
 * λ is 1, B read from bf16 bits.
 */
export function finishBF16(out: usize, mix: usize, base: usize, n: i32, lambda: f32): void {
  const n4 = n & ~3;
  const vl = f32x4.splat(lambda);
  const unit = lambda == 1;
  for (let k = 0; k < n4; k += 4) {
    const x = v128.load(mix + (<usize>k << 2));
    const b = ld4(base + (<usize>k << 1));
    st4(out + (<usize>k << 1), rne4(unit ? f32x4.add(x, b) : f32x4.add(b, f32x4.mul(x, vl))));
  }
  for (let k = n4; k < n; k++) {
    const x = load<f32>(mix + (<usize>k << 2));
    const b = bf16At(base + (<usize>k << 1));
    store<u16>(out + (<usize>k << 1), rne1(reinterpret<u32>(unit ? x + b : b + x * lambda)));
  }
}

/** d = +0 everywhere (an input whose density drops everything). */
export function zeroF32(d: usize, n: i32): void {
  memory.fill(d, 0, <usize>n << 2);
}

/** `addScaled` into fp32: out = f32(B + f32(λ·mix)), or f32(mix + B) when λ is 1 (B bf16 bits). */
export function finishF32(out: usize, mix: usize, base: usize, n: i32, lambda: f32): void {
  const n4 = n & ~3;
  const vl = f32x4.splat(lambda);
  const unit = lambda == 1;
  for (let k = 0; k < n4; k += 4) {
    const x = v128.load(mix + (<usize>k << 2));
    const b = ld4(base + (<usize>k << 1));
    v128.store(out + (<usize>k << 2), unit ? f32x4.add(x, b) : f32x4.add(b, f32x4.mul(x, vl)));
  }
  for (let k = n4; k < n; k++) {
    const x = load<f32>(mix + (<usize>k << 2));
    const b = bf16At(base + (<usize>k << 1));
    store<f32>(out + (<usize>k << 2), unit ? x + b : b + x * lambda);
  }
}

// --- stats passes straight from bf16 (δ computed 4 lanes at a time, never stored) -----------

/** |δ| keys of 4 elements: (f32(x) − f32(b)) bits with the sign cleared. */
// @ts-ignore: decorator
@inline function keys4(x: usize, b: usize): v128 {
  return v128.and(f32x4.sub(ld4(x), ld4(b)), i32x4.splat(ABS));
}

// @ts-ignore: decorator
@inline function bump(h: usize, key: u32): void {
  const p = h + (<usize>(key >>> 16) << 2);
  store<u32>(p, load<u32>(p) + 1);
}

// @ts-ignore: decorator
@inline function key1(x: usize, b: usize): u32 {
  return reinterpret<u32>(bf16At(x) - bf16At(b)) & ABS;
}

/** Histogram h (65536 u32) of the high 16 bits of |δ|'s float bits, δ = f32(x) − f32(b) (bf16 inputs). */
export function histHiBF16(h: usize, x: usize, b: usize, n: i32): void {
  const n4 = n & ~3;
  for (let k = 0; k < n4; k += 4) {
    const v = keys4(x + (<usize>k << 1), b + (<usize>k << 1));
    bump(h, i32x4.extract_lane(v, 0));
    bump(h, i32x4.extract_lane(v, 1));
    bump(h, i32x4.extract_lane(v, 2));
    bump(h, i32x4.extract_lane(v, 3));
  }
  for (let k = n4; k < n; k++) bump(h, key1(x + (<usize>k << 1), b + (<usize>k << 1)));
}

/** histHiBF16 and s + Σ|δ| (float64, index order); returns the sum. */
export function histHiL1BF16(h: usize, x: usize, b: usize, n: i32, s: f64): f64 {
  const n4 = n & ~3;
  for (let k = 0; k < n4; k += 4) {
    const v = keys4(x + (<usize>k << 1), b + (<usize>k << 1));
    const a0 = i32x4.extract_lane(v, 0);
    const a1 = i32x4.extract_lane(v, 1);
    const a2 = i32x4.extract_lane(v, 2);
    const a3 = i32x4.extract_lane(v, 3);
    bump(h, a0);
    bump(h, a1);
    bump(h, a2);
    bump(h, a3);
    s += <f64>reinterpret<f32>(a0);
    s += <f64>reinterpret<f32>(a1);
    s += <f64>reinterpret<f32>(a2);
    s += <f64>reinterpret<f32>(a3);
  }
  for (let k = n4; k < n; k++) {
    const a = key1(x + (<usize>k << 1), b + (<usize>k << 1));
    bump(h, a);
    s += <f64>reinterpret<f32>(a);
  }
  return s;
}

/** Low-16-bit histograms of the |δ| keys whose high 16 bits are hiA (into hA) or else hiB (hB). */
export function histLoBF16(hA: usize, hB: usize, hiA: u32, hiB: u32, x: usize, b: usize, n: i32): void {
  const n4 = n & ~3;
  const va = i32x4.splat(hiA);
  const vb = i32x4.splat(hiB);
  for (let k = 0; k < n4; k += 4) {
    const v = keys4(x + (<usize>k << 1), b + (<usize>k << 1));
    const hi = i32x4.shr_u(v, 16);
    if (!v128.any_true(v128.or(i32x4.eq(hi, va), i32x4.eq(hi, vb)))) continue;
    lo1(hA, hB, hiA, hiB, i32x4.extract_lane(v, 0));
    lo1(hA, hB, hiA, hiB, i32x4.extract_lane(v, 1));
    lo1(hA, hB, hiA, hiB, i32x4.extract_lane(v, 2));
    lo1(hA, hB, hiA, hiB, i32x4.extract_lane(v, 3));
  }
  for (let k = n4; k < n; k++) lo1(hA, hB, hiA, hiB, key1(x + (<usize>k << 1), b + (<usize>k << 1)));
}

// @ts-ignore: decorator
@inline function lo1(hA: usize, hB: usize, hiA: u32, hiB: u32, key: u32): void {
  const hi = key >>> 16;
  const h = hi == hiA ? hA : hi == hiB ? hB : 0;
  if (h == 0) return;
  const p = h + (<usize>(key & 0xffff) << 2);
  store<u32>(p, load<u32>(p) + 1);
}

/**
 * gta-selectors.ts DARE's "norms-and-buckets" step (with rescale): sums[0] += Σ|δ|,
 * sums[1] += Σ|δ|·keep (float64, index order), element j drawing counter start + j.
 */
export function randomL1BF16(x: usize, b: usize, n: i32, k0: u32, k1: u32, mk: u32, thr: u32, start: u32, sums: usize): void {
  const n4 = n & ~3;
  const vk0 = i32x4.splat(k0);
  const vk1 = i32x4.splat(k1);
  const vmk = i32x4.splat(mk);
  const vthr = i32x4.splat(thr);
  let idx = i32x4.add(i32x4.splat(start), i32x4(0, 1, 2, 3));
  const four = i32x4.splat(4);
  let before = load<f64>(sums);
  let after = load<f64>(sums, 8);
  for (let k = 0; k < n4; k += 4) {
    const a = keys4(x + (<usize>k << 1), b + (<usize>k << 1));
    const kept = v128.and(a, keep4(idx, vk0, vk1, vmk, vthr));
    idx = i32x4.add(idx, four);
    before += <f64>f32x4.extract_lane(a, 0);
    after += <f64>f32x4.extract_lane(kept, 0);
    before += <f64>f32x4.extract_lane(a, 1);
    after += <f64>f32x4.extract_lane(kept, 1);
    before += <f64>f32x4.extract_lane(a, 2);
    after += <f64>f32x4.extract_lane(kept, 2);
    before += <f64>f32x4.extract_lane(a, 3);
    after += <f64>f32x4.extract_lane(kept, 3);
  }
  for (let k = n4; k < n; k++) {
    const a = key1(x + (<usize>k << 1), b + (<usize>k << 1));
    const z = hash1(start + <u32>k, k0, k1, mk);
    before += <f64>reinterpret<f32>(a);
    after += <f64>reinterpret<f32>(a & <u32>((<i32>(z >>> 8) - <i32>thr) >> 31));
  }
  store<f64>(sums, before);
  store<f64>(sums, after, 8);
}

// --- slerp (methods/slerp.ts) ---------------------------------------------------------------

/** `addSquares`: sums[0] += Σx0², sums[1] += Σx1² (float64, index order; bf16 inputs). */
export function sumSquaresBF16(x0: usize, x1: usize, n: i32, sums: usize): void {
  let s00 = load<f64>(sums);
  let s11 = load<f64>(sums, 8);
  for (let k = 0; k < n; k++) {
    const a = <f64>bf16At(x0 + (<usize>k << 1));
    const b = <f64>bf16At(x1 + (<usize>k << 1));
    s00 += a * a;
    s11 += b * b;
  }
  store<f64>(sums, s00);
  store<f64>(sums, s11, 8);
}

/** `addDot`: s + Σ f32(x0/d0)·f32(x1/d1) (float64, index order; bf16 inputs). */
export function dotScaledBF16(x0: usize, x1: usize, n: i32, d0: f32, d1: f32, s: f64): f64 {
  const n4 = n & ~3;
  const v0 = f32x4.splat(d0);
  const v1 = f32x4.splat(d1);
  for (let k = 0; k < n4; k += 4) {
    const a = f32x4.div(ld4(x0 + (<usize>k << 1)), v0);
    const b = f32x4.div(ld4(x1 + (<usize>k << 1)), v1);
    s += <f64>f32x4.extract_lane(a, 0) * <f64>f32x4.extract_lane(b, 0);
    s += <f64>f32x4.extract_lane(a, 1) * <f64>f32x4.extract_lane(b, 1);
    s += <f64>f32x4.extract_lane(a, 2) * <f64>f32x4.extract_lane(b, 2);
    s += <f64>f32x4.extract_lane(a, 3) * <f64>f32x4.extract_lane(b, 3);
  }
  for (let k = n4; k < n; k++) s += <f64>(bf16At(x0 + (<usize>k << 1)) / d0) * <f64>(bf16At(x1 + (<usize>k << 1)) / d1);
  return s;
}

/** The blend: f32(c0·x0 + c1·x1) in float64 (bf16 inputs), written as bf16 bits or as fp32. */
export function blendBF16(out: usize, x0: usize, x1: usize, n: i32, c0: f64, c1: f64, toF32: bool): void {
  const n4 = n & ~3;
  const w0 = f64x2.splat(c0);
  const w1 = f64x2.splat(c1);
  for (let k = 0; k < n4; k += 4) {
    const a = ld4(x0 + (<usize>k << 1));
    const b = ld4(x1 + (<usize>k << 1));
    const lo = f64x2.add(f64x2.mul(w0, f64x2.promote_low_f32x4(a)), f64x2.mul(w1, f64x2.promote_low_f32x4(b)));
    const hi = f64x2.add(
      f64x2.mul(w0, f64x2.promote_low_f32x4(i32x4.shuffle(a, a, 2, 3, 0, 1))),
      f64x2.mul(w1, f64x2.promote_low_f32x4(i32x4.shuffle(b, b, 2, 3, 0, 1))),
    );
    const r = i32x4.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
    if (toF32) v128.store(out + (<usize>k << 2), r);
    else st4(out + (<usize>k << 1), rne4(r));
  }
  for (let k = n4; k < n; k++) {
    const r = <f32>(c0 * <f64>bf16At(x0 + (<usize>k << 1)) + c1 * <f64>bf16At(x1 + (<usize>k << 1)));
    if (toF32) store<f32>(out + (<usize>k << 2), r);
    else store<u16>(out + (<usize>k << 1), rne1(reinterpret<u32>(r)));
  }
}

// --- output check (engine/tensor/non-finite.ts) ---------------------------------------------

/** 1 when any of the n bf16 values at p is NaN or ±inf (all exponent bits set), else 0. */
export function nonFiniteBF16(p: usize, n: i32): i32 {
  const n8 = n & ~7;
  const e = i16x8.splat(0x7f80);
  let acc = i16x8.splat(0);
  for (let k = 0; k < n8; k += 8) acc = v128.or(acc, i16x8.eq(v128.and(v128.load(p + (<usize>k << 1)), e), e));
  if (v128.any_true(acc)) return 1;
  for (let k = n8; k < n; k++) if ((<i32>load<u16>(p + (<usize>k << 1)) & 0x7f80) == 0x7f80) return 1;
  return 0;
}
