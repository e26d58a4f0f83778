// Float64 CPU references for the kernel tests (plain loops, written for clarity).
export type Arr = ArrayLike<number>;

export function matmul64(a: Arr, b: Arr, M: number, N: number, K: number, transA = false, transB = false): Float64Array {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += (transA ? a[k * M + i] : a[i * K + k]) * (transB ? b[j * K + k] : b[k * N + j]);
      c[i * N + j] = s;
    }
  }
  return c;
}

export const gelu64 = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
export const silu64 = (x: number) => x / (1 + Math.exp(-x));

/** LayerNorm of each row of width D (biased variance). */
export function layerNorm64(x: Arr, D: number, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / D; r++) {
    let m = 0;
    for (let d = 0; d < D; d++) m += x[r * D + d];
    m /= D;
    let v = 0;
    for (let d = 0; d < D; d++) v += (x[r * D + d] - m) ** 2;
    const rs = 1 / Math.sqrt(v / D + eps);
    for (let d = 0; d < D; d++) out[r * D + d] = (x[r * D + d] - m) * rs;
  }
  return out;
}

export function softmaxRows64(x: Arr, n: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / n; r++) {
    let m = -Infinity;
    for (let i = 0; i < n; i++) m = Math.max(m, x[r * n + i]);
    let s = 0;
    for (let i = 0; i < n; i++) s += Math.exp(x[r * n + i] - m);
    for (let i = 0; i < n; i++) out[r * n + i] = Math.exp(x[r * n + i] - m) / s;
  }
  return out;
}

/** Multi-head attention on token-major [B, T, H·dh] operands. */
export function attention64(q: Arr, k: Arr, v: Arr, B: number, Tq: number, Tk: number, H: number, dh: number): Float64Array {
  const D = H * dh;
  const out = new Float64Array(B * Tq * D);
  const s = new Float64Array(Tk);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < Tq; i++) {
    let m = -Infinity;
    for (let j = 0; j < Tk; j++) {
      let acc = 0;
      for (let e = 0; e < dh; e++) acc += q[(b * Tq + i) * D + h * dh + e] * k[(b * Tk + j) * D + h * dh + e];
      s[j] = acc / Math.sqrt(dh);
      m = Math.max(m, s[j]);
    }
    let z = 0;
    for (let j = 0; j < Tk; j++) { s[j] = Math.exp(s[j] - m); z += s[j]; }
    for (let e = 0; e < dh; e++) {
      let acc = 0;
      for (let j = 0; j < Tk; j++) acc += s[j] * v[(b * Tk + j) * D + h * dh + e];
      out[(b * Tq + i) * D + h * dh + e] = acc / z;
    }
  }
  return out;
}

/** NCHW conv2d with asymmetric zero padding [left, right, top, bottom]. */
export function conv2d64(x: Arr, w: Arr, bias: Arr | null, B: number, Ci: number, H: number, W: number, Co: number, KH: number, KW: number, stride: number, pad: [number, number, number, number]): { out: Float64Array; Ho: number; Wo: number } {
  const [pl, pr, pt, pb] = pad;
  const Ho = Math.floor((H + pt + pb - KH) / stride) + 1, Wo = Math.floor((W + pl + pr - KW) / stride) + 1;
  const out = new Float64Array(B * Co * Ho * Wo);
  for (let b = 0; b < B; b++) for (let co = 0; co < Co; co++) for (let y = 0; y < Ho; y++) for (let xx = 0; xx < Wo; xx++) {
    let s = bias ? bias[co] : 0;
    for (let ci = 0; ci < Ci; ci++) for (let ky = 0; ky < KH; ky++) for (let kx = 0; kx < KW; kx++) {
      const iy = y * stride + ky - pt, ix = xx * stride + kx - pl;
      if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
      s += x[((b * Ci + ci) * H + iy) * W + ix] * w[((co * Ci + ci) * KH + ky) * KW + kx];
    }
    out[((b * Co + co) * Ho + y) * Wo + xx] = s;
  }
  return { out, Ho, Wo };
}

export function groupNorm64(x: Arr, B: number, C: number, HW: number, G: number, w: Arr, bias: Arr, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  const cg = C / G;
  for (let b = 0; b < B; b++) for (let g = 0; g < G; g++) {
    let m = 0;
    const n = cg * HW;
    for (let c = g * cg; c < (g + 1) * cg; c++) for (let i = 0; i < HW; i++) m += x[(b * C + c) * HW + i];
    m /= n;
    let v = 0;
    for (let c = g * cg; c < (g + 1) * cg; c++) for (let i = 0; i < HW; i++) v += (x[(b * C + c) * HW + i] - m) ** 2;
    const rs = 1 / Math.sqrt(v / n + eps);
    for (let c = g * cg; c < (g + 1) * cg; c++) for (let i = 0; i < HW; i++) out[(b * C + c) * HW + i] = (x[(b * C + c) * HW + i] - m) * rs * w[c] + bias[c];
  }
  return out;
}
