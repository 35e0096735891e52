/**
 * The WebAssembly SIMD kernels (engine/kernels/assembly/kernels.ts, compiled by AssemblyScript at
 * build time) and the arena their data lives in. One instance per thread, created on first use.
 *
 * Why WebAssembly: the hot loops (bf16 decode, weighted sums, task-vector masks, sign consensus,
 * bf16 rounding) run 4 lanes at a time with SIMD, which plain TypeScript cannot express; the
 * kernels reproduce the TypeScript loops operation for operation, so outputs are unchanged.
 *
 * Arena rule: memory may grow on any `alloc`, which detaches every typed-array view made before.
 * So callers keep byte offsets (numbers) across allocations and make views right before use.
 */
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export interface KernelExports {
  memory: WebAssembly.Memory;
  HEAP_BASE: WebAssembly.Global;
  linearBF16(out: number, srcs: number, ws: number, m: number, n: number, div: number): void;
  deltaBF16(d: number, x: number, b: number, n: number): void;
  maskRandom(d: number, n: number, k0: number, k1: number, mk: number, thr: number, start: number): void;
  l1(d: number, n: number, s: number): number;
  maskMagnitude(d: number, n: number, t: number, tiesLeft: number): number;
  maskOutliers(d: number, n: number, lk: number, hk: number, skipLow: number, keepHigh: number, state: number): void;
  scaleF64(d: number, n: number, r: number): void;
  mixConsensus(mix: number, ds: number, ws: number, m: number, n: number, normalize: number): void;
  mixSum(mix: number, ds: number, ws: number, m: number, n: number, div: number): void;
  finishBF16(out: number, mix: number, base: number, n: number, lambda: number): void;
  finishF32(out: number, mix: number, base: number, n: number, lambda: number): void;
  zeroF32(d: number, n: number): void;
  histHiBF16(h: number, x: number, b: number, n: number): void;
  histHiL1BF16(h: number, x: number, b: number, n: number, s: number): number;
  histLoBF16(hA: number, hB: number, hiA: number, hiB: number, x: number, b: number, n: number): void;
  sumSquaresBF16(x0: number, x1: number, n: number, sums: number): void;
  dotScaledBF16(x0: number, x1: number, n: number, d0: number, d1: number, s: number): number;
  blendBF16(out: number, x0: number, x1: number, n: number, c0: number, c1: number, toF32: number): void;
  randomL1BF16(x: number, b: number, n: number, k0: number, k1: number, mk: number, thr: number, start: number, sums: number): void;
  nonFiniteBF16(p: number, n: number): number;
}

const PAGE = 65536;
const ALIGN = 64;

let compiled: WebAssembly.Module | undefined;

function wasmPath(): string {
  // engine/dist/kernels/kernels.wasm next to the compiled loader; from sources, the built copy.
  for (const rel of ["./kernels.wasm", "../dist/kernels/kernels.wasm"]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error("mergeloom: the WebAssembly kernels (engine/dist/kernels/kernels.wasm) are missing; run `npm run build`");
}

/** A bump allocator over the kernels' memory; `mark`/`release` bracket per-chunk allocations. */
export class KernelArena {
  readonly k: KernelExports;
  private readonly base: number;
  private top: number;
  constructor(k: KernelExports) {
    this.k = k;
    this.base = Math.ceil(Math.max(Number(k.HEAP_BASE.value), 1024) / ALIGN) * ALIGN;
    this.top = this.base;
  }
  /** Frees everything (the start of a tensor job). */
  reset(): void {
    this.top = this.base;
  }
  mark(): number {
    return this.top;
  }
  release(mark: number): void {
    this.top = mark;
  }
  /** `bytes` bytes, 64-byte aligned, contents undefined; may grow memory (detaching views). */
  alloc(bytes: number): number {
    const p = this.top;
    const end = p + Math.ceil(bytes / ALIGN) * ALIGN;
    const have = this.k.memory.buffer.byteLength;
    if (end > have) this.k.memory.grow(Math.ceil((end - have) / PAGE));
    this.top = end;
    return p;
  }
  u8(p: number, n: number): Uint8Array {
    return new Uint8Array(this.k.memory.buffer, p, n);
  }
  u16(p: number, n: number): Uint16Array {
    return new Uint16Array(this.k.memory.buffer, p, n);
  }
  u32(p: number, n: number): Uint32Array {
    return new Uint32Array(this.k.memory.buffer, p, n);
  }
  f32(p: number, n: number): Float32Array {
    return new Float32Array(this.k.memory.buffer, p, n);
  }
  f64(p: number, n: number): Float64Array {
    return new Float64Array(this.k.memory.buffer, p, n);
  }
  /** Bytes the memory holds now (it never shrinks): for tests of bounded memory. */
  get capacity(): number {
    return this.k.memory.buffer.byteLength;
  }
}

let arena: KernelArena | undefined;

/** This thread's kernels and arena. */
export function kernelArena(): KernelArena {
  if (!arena) {
    compiled ??= new WebAssembly.Module(readFileSync(wasmPath()));
    const instance = new WebAssembly.Instance(compiled, {});
    arena = new KernelArena(instance.exports as unknown as KernelExports);
  }
  return arena;
}
