/**
 * Truncated SVD of a matrix that is only ever read in row chunks: the randomized range finder
 * with subspace (power) iterations of Halko, Martinsson & Tropp (2011, Alg. 4.4 + 5.1). Each pass
 * streams the rows once, so memory is O((rows + cols)·k) however large the matrix — a 70B
 * model's 28672×8192 delta never sits in memory whole. With k = rank + oversampling and two
 * power iterations the error is within a few percent of the optimal (Eckart–Young) error for the
 * slowly decaying spectra of fine-tuning deltas; `mergeloom lora extract` measures and reports it.
 *
 * Written here rather than taken from npm: the JavaScript linear-algebra packages (ml-matrix and
 * friends) compute a full dense SVD of an in-memory matrix, which is neither streamed nor
 * affordable at these sizes. The small k×k eigenproblem reuses the Jacobi solver of evolve.
 */
import { symmetricEigen } from "../evolve/symmetric-eigen.js";
import { createRandom } from "@mergeloom/engine/tensor";

/** Rows [r0, r1) of the matrix, row-major, `cols` values per row. */
export type RowChunks = (r0: number, r1: number) => Promise<Float32Array | Float64Array>;

export interface TruncatedSvd {
  /** rows × rank, row-major. */
  u: Float64Array;
  s: Float64Array;
  /** rank × cols, row-major. */
  vt: Float64Array;
  rank: number;
}

export interface SvdOptions {
  oversample?: number;
  powerIterations?: number;
  seed?: number;
  /** Rows per chunk (default: about 4M values). */
  chunkRows?: number;
}

/** Orthonormalizes the k columns of an n×k row-major matrix in place (modified Gram–Schmidt, twice). */
function orthonormalize(q: Float64Array, n: number, k: number): void {
  for (let pass = 0; pass < 2; pass++) {
    for (let j = 0; j < k; j++) {
      for (let p = 0; p < j; p++) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += q[i * k + j] * q[i * k + p];
        for (let i = 0; i < n; i++) q[i * k + j] -= dot * q[i * k + p];
      }
      let norm = 0;
      for (let i = 0; i < n; i++) norm += q[i * k + j] ** 2;
      norm = Math.sqrt(norm);
      // A zero column (rank-deficient matrix) stays zero; its singular value comes out 0.
      if (norm > 0) for (let i = 0; i < n; i++) q[i * k + j] /= norm;
    }
  }
}

export async function randomizedSvd(read: RowChunks, rows: number, cols: number, rank: number, opts: SvdOptions = {}): Promise<TruncatedSvd> {
  const r = Math.min(rank, rows, cols);
  const k = Math.min(r + (opts.oversample ?? 10), rows, cols);
  const chunk = opts.chunkRows ?? Math.max(1, Math.floor((4 << 20) / cols));
  const rand = createRandom(opts.seed ?? 0, `svd:${rows}x${cols}`);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());

  // One pass over the rows: for each chunk, f(chunk, r0, r1).
  const pass = async (f: (a: Float32Array | Float64Array, r0: number, r1: number) => void) => {
    for (let r0 = 0; r0 < rows; r0 += chunk) {
      const r1 = Math.min(rows, r0 + chunk);
      f(await read(r0, r1), r0, r1);
    }
  };
  // Y = A·Ω (rows × k) from Ω (cols × k), or, transposed, Z = Aᵀ·Y (cols × k) from Y (rows × k):
  // one pass over A's rows either way, skipping zeros (sparse deltas).
  const multiply = async (m: Float64Array, transpose: boolean): Promise<Float64Array> => {
    const out = new Float64Array((transpose ? cols : rows) * k);
    await pass((a, r0, r1) => {
      for (let i = r0; i < r1; i++) {
        const ai = (i - r0) * cols;
        const ik = i * k;
        for (let c = 0; c < cols; c++) {
          const v = a[ai + c];
          if (v === 0) continue;
          const dst = transpose ? c * k : ik;
          const src = transpose ? ik : c * k;
          for (let j = 0; j < k; j++) out[dst + j] += v * m[src + j];
        }
      }
    });
    return out;
  };
  const times = (omega: Float64Array) => multiply(omega, false);
  const timesT = (y: Float64Array) => multiply(y, true);

  const omega = new Float64Array(cols * k);
  for (let i = 0; i < omega.length; i++) omega[i] = gauss();
  let y = await times(omega);
  orthonormalize(y, rows, k);
  for (let it = 0; it < (opts.powerIterations ?? 2); it++) {
    const z = await timesT(y);
    orthonormalize(z, cols, k);
    y = await times(z);
    orthonormalize(y, rows, k);
  }
  // B = Yᵀ·A (k × cols), kept transposed as Bᵀ = Aᵀ·Y (cols × k).
  const bt = await timesT(y);
  // B·Bᵀ = Ũ Σ² Ũᵀ (k × k).
  const bbt: number[][] = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let c = 0; c < cols; c++) {
    const o = c * k;
    for (let p = 0; p < k; p++) {
      const v = bt[o + p];
      if (v === 0) continue;
      for (let q = p; q < k; q++) bbt[p][q] += v * bt[o + q];
    }
  }
  for (let p = 0; p < k; p++) for (let q = 0; q < p; q++) bbt[p][q] = bbt[q][p];
  const eig = symmetricEigen(bbt);
  const order = eig.values
    .map((_, i) => i)
    .sort((a, b) => eig.values[b] - eig.values[a])
    .slice(0, r);
  const s = Float64Array.from(order, (i) => Math.sqrt(Math.max(0, eig.values[i])));
  // U = Y·Ũ (rows × r); Vᵀ = Σ⁻¹ Ũᵀ B (r × cols).
  const u = new Float64Array(rows * r);
  for (let i = 0; i < rows; i++) {
    for (let t = 0; t < r; t++) {
      let acc = 0;
      for (let p = 0; p < k; p++) acc += y[i * k + p] * eig.vectors[p][order[t]];
      u[i * r + t] = acc;
    }
  }
  const vt = new Float64Array(r * cols);
  for (let t = 0; t < r; t++) {
    if (s[t] === 0) continue;
    for (let c = 0; c < cols; c++) {
      let acc = 0;
      for (let p = 0; p < k; p++) acc += eig.vectors[p][order[t]] * bt[c * k + p];
      vt[t * cols + c] = acc / s[t];
    }
  }
  return { u, s, vt, rank: r };
}
