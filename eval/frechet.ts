// The Fréchet distance between two sets of feature vectors (the FID formula, on whatever features the caller
// extracts): ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½), all in float64 on the CPU. tr((Σ₁Σ₂)^½) is taken as
// tr((Σ₁^½ Σ₂ Σ₁^½)^½) — the same eigenvalues, but a symmetric matrix — from two symmetric
// eigendecompositions (cyclic Jacobi), so no general matrix square root is needed.

/** Mean and unbiased covariance (n − 1, as numpy.cov) of n vectors of dimension d, row-major. */
export function meanCov(x: ArrayLike<number>, n: number, d: number): { mean: Float64Array; cov: Float64Array } {
  if (n < 2) throw new Error(`meanCov: need at least 2 vectors, got ${n}`);
  if (x.length !== n * d) throw new Error(`meanCov: ${x.length} values are not ${n} vectors of ${d}`);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += x[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  const cov = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = x[i * d + j] - mean[j];
    for (let a = 0; a < d; a++) {
      const ra = row[a];
      for (let b = a; b < d; b++) cov[a * d + b] += ra * row[b];
    }
  }
  for (let a = 0; a < d; a++) for (let b = a; b < d; b++) { cov[a * d + b] /= n - 1; cov[b * d + a] = cov[a * d + b]; }
  return { mean, cov };
}

/**
 * Eigendecomposition of a symmetric d×d matrix by cyclic Jacobi rotations: A = V·diag(values)·Vᵀ, the
 * columns of V the eigenvectors. Accurate to rounding for the small (≤ a few hundred) matrices used here.
 */
export function symmetricEigen(a: ArrayLike<number>, d: number): { values: Float64Array; vectors: Float64Array } {
  const A = Float64Array.from(a);
  const V = new Float64Array(d * d);
  for (let i = 0; i < d; i++) V[i * d + i] = 1;
  let scale = 0;
  for (let i = 0; i < d * d; i++) scale = Math.max(scale, Math.abs(A[i]));
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off = Math.max(off, Math.abs(A[p * d + q]));
    if (off <= 1e-14 * scale || off === 0) break;
    for (let p = 0; p < d; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = A[p * d + q];
        if (Math.abs(apq) <= 1e-300) continue;
        // The rotation that zeroes A[p][q] (Golub & Van Loan's stable form).
        const theta = (A[q * d + q] - A[p * d + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < d; k++) {
          const akp = A[k * d + p], akq = A[k * d + q];
          A[k * d + p] = c * akp - s * akq;
          A[k * d + q] = s * akp + c * akq;
        }
        for (let k = 0; k < d; k++) {
          const apk = A[p * d + k], aqk = A[q * d + k];
          A[p * d + k] = c * apk - s * aqk;
          A[q * d + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = V[k * d + p], vkq = V[k * d + q];
          V[k * d + p] = c * vkp - s * vkq;
          V[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(d);
  for (let i = 0; i < d; i++) values[i] = A[i * d + i];
  return { values, vectors: V };
}

/** The symmetric PSD square root V·diag(√max(λ, 0))·Vᵀ. */
export function sqrtPsd(a: ArrayLike<number>, d: number): Float64Array {
  const { values, vectors: V } = symmetricEigen(a, d);
  const out = new Float64Array(d * d);
  for (let k = 0; k < d; k++) {
    const s = Math.sqrt(Math.max(values[k], 0));
    if (s === 0) continue;
    for (let i = 0; i < d; i++) {
      const vi = V[i * d + k] * s;
      for (let j = 0; j < d; j++) out[i * d + j] += vi * V[j * d + k];
    }
  }
  return out;
}

function matmulSq(a: Float64Array, b: ArrayLike<number>, d: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let k = 0; k < d; k++) {
    const aik = a[i * d + k];
    if (aik === 0) continue;
    for (let j = 0; j < d; j++) out[i * d + j] += aik * b[k * d + j];
  }
  return out;
}

/** tr((Σ₁Σ₂)^½) for symmetric PSD Σ₁, Σ₂. */
export function traceSqrtProduct(c1: ArrayLike<number>, c2: ArrayLike<number>, d: number): number {
  const s1 = sqrtPsd(c1, d);
  const m = matmulSq(matmulSq(s1, c2, d), s1, d);
  // Symmetrise against rounding before the second decomposition.
  for (let i = 0; i < d; i++) for (let j = i + 1; j < d; j++) { const v = 0.5 * (m[i * d + j] + m[j * d + i]); m[i * d + j] = v; m[j * d + i] = v; }
  return symmetricEigen(m, d).values.reduce((acc, l) => acc + Math.sqrt(Math.max(l, 0)), 0);
}

export interface Gaussian { mean: Float64Array; cov: Float64Array; dim: number }

export function gaussianOf(features: ArrayLike<number>, n: number, d: number): Gaussian {
  return { ...meanCov(features, n, d), dim: d };
}

/** ‖μ₁ − μ₂‖² + tr(Σ₁) + tr(Σ₂) − 2·tr((Σ₁Σ₂)^½). */
export function frechetDistance(a: Gaussian, b: Gaussian): number {
  const d = a.dim;
  if (b.dim !== d) throw new Error(`frechetDistance: feature dimensions differ (${a.dim} vs ${b.dim})`);
  let dm = 0, tr = 0;
  for (let i = 0; i < d; i++) { dm += (a.mean[i] - b.mean[i]) ** 2; tr += a.cov[i * d + i] + b.cov[i * d + i]; }
  return Math.max(0, dm + tr - 2 * traceSqrtProduct(a.cov, b.cov, d));
}
