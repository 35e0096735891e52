/**
 * Eigendecomposition of a real symmetric matrix by the cyclic Jacobi method. CMA-ES only needs
 * it for covariance matrices of a few hundred dimensions at most, where Jacobi's O(n^3) per
 * sweep is affordable and its accuracy (small relative error even for tiny eigenvalues) and
 * determinism matter more than speed.
 */

export interface SymmetricEigen {
  /** Eigenvalues, ascending. */
  values: number[];
  /** vectors[i][k] is component i of the eigenvector for values[k] (vectors are columns). */
  vectors: number[][];
}

const MAX_SWEEPS = 100;

/** Decomposes `a` (read as symmetric from its upper triangle) as V diag(values) V^T. */
export function symmetricEigen(a: readonly (readonly number[])[]): SymmetricEigen {
  const n = a.length;
  const m: number[][] = [];
  for (let i = 0; i < n; i++) {
    m.push(new Array<number>(n));
    for (let j = 0; j < n; j++) m[i][j] = i <= j ? a[i][j] : a[j][i];
  }
  const v: number[][] = [];
  for (let i = 0; i < n; i++) {
    v.push(new Array<number>(n).fill(0));
    v[i][i] = 1;
  }

  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    let off = 0;
    let diag = 0;
    for (let p = 0; p < n; p++) {
      diag += m[p][p] * m[p][p];
      for (let q = p + 1; q < n; q++) off += m[p][q] * m[p][q];
    }
    // converged when the off-diagonal mass is at rounding level relative to the diagonal
    if (off === 0 || off <= 1e-32 * diag) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p][q];
        if (apq === 0) continue;
        const app = m[p][p];
        const aqq = m[q][q];
        // an element negligible against both diagonal entries is set to zero (after warm-up)
        if (sweep > 3 && Math.abs(apq) < 1e-18 * Math.abs(app) && Math.abs(apq) < 1e-18 * Math.abs(aqq)) {
          m[p][q] = 0;
          m[q][p] = 0;
          continue;
        }
        // rotation angle phi with t = tan(phi) the smaller root of t^2 + 2 theta t - 1 = 0
        const theta = (aqq - app) / (2 * apq);
        const t = Math.abs(theta) > 1e150 ? 1 / (2 * theta) : Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        m[p][p] = app - t * apq;
        m[q][q] = aqq + t * apq;
        m[p][q] = 0;
        m[q][p] = 0;
        for (let k = 0; k < n; k++) {
          if (k !== p && k !== q) {
            const akp = m[k][p];
            const akq = m[k][q];
            const nkp = c * akp - s * akq;
            const nkq = s * akp + c * akq;
            m[k][p] = nkp;
            m[p][k] = nkp;
            m[k][q] = nkq;
            m[q][k] = nkq;
          }
          const vkp = v[k][p];
          const vkq = v[k][q];
          v[k][p] = c * vkp - s * vkq;
          v[k][q] = s * vkp + c * vkq;
        }
      }
    }
  }

  const order = m.map((_, i) => i).sort((i, j) => m[i][i] - m[j][j] || i - j);
  return {
    values: order.map((k) => m[k][k]),
    vectors: v.map((row) => order.map((k) => row[k])),
  };
}
