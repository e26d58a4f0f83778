// Float64 CPU references of the kernels, plain loops written for clarity: what kernels/registry.ts checks
// every variant against (tests, benchmark, autotuner). Products whose cost grows faster than their output
// (matmul, attention, conv2d) are element functions of the flat output index, so that large problems can be
// checked on a sample of outputs.
export type Arr = ArrayLike<number>;

export const sigmoid64 = (x: number) => 1 / (1 + Math.exp(-x));
export const gelu64 = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
export const silu64 = (x: number) => x * sigmoid64(x);

/** The standard normal CDF as the tanh approximation the kernels use (GELU and the diffusion likelihood). */
export const approxCdf64 = (x: number) => 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

export interface MatmulShape {
  M: number; N: number; K: number; batch: number; transA: boolean; transB: boolean;
  /** Elements between batch entries (0: one operand shared by the batch). */
  strideA: number; strideB: number;
}

/** Element (b, i, j) of op(A[b])·op(B[b]) at flat index (b·M + i)·N + j. */
export function matmulAt(a: Arr, b: Arr, s: MatmulShape): (idx: number) => number {
  const { M, N, K } = s;
  return (idx) => {
    const j = idx % N, i = Math.floor(idx / N) % M, bz = Math.floor(idx / (M * N));
    const oa = bz * s.strideA, ob = bz * s.strideB;
    let acc = 0;
    for (let k = 0; k < K; k++) acc += a[oa + (s.transA ? k * M + i : i * K + k)] * b[ob + (s.transB ? j * K + k : k * N + j)];
    return acc;
  };
}

/** LayerNorm of each row of width D (biased variance, no affine). */
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

/** Softmax (or log-softmax) of each row of width n. */
export function softmaxRows64(x: Arr, n: number, log = false): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / n; r++) {
    let m = -Infinity;
    for (let i = 0; i < n; i++) m = Math.max(m, x[r * n + i]);
    let s = 0;
    for (let i = 0; i < n; i++) s += Math.exp(x[r * n + i] - m);
    for (let i = 0; i < n; i++) out[r * n + i] = log ? x[r * n + i] - m - Math.log(s) : Math.exp(x[r * n + i] - m) / s;
  }
  return out;
}

/**
 * Multi-head attention on token-major operands q [B, Tq, H·dh], k and v [B, Tk, H·dh], scale 1/√dh: the
 * element at flat index ((b·Tq + i)·H + h)·dh + e. Each (b, i, h) row's probabilities are computed once.
 */
export function attentionAt(q: Arr, k: Arr, v: Arr, Tq: number, Tk: number, H: number, dh: number): (idx: number) => number {
  const D = H * dh;
  const rows = new Map<number, Float64Array>();
  const probs = (b: number, i: number, h: number): Float64Array => {
    const key = (b * Tq + i) * H + h;
    let p = rows.get(key);
    if (p) return p;
    p = new Float64Array(Tk);
    let m = -Infinity;
    for (let j = 0; j < Tk; j++) {
      let acc = 0;
      for (let e = 0; e < dh; e++) acc += q[(b * Tq + i) * D + h * dh + e] * k[(b * Tk + j) * D + h * dh + e];
      p[j] = acc / Math.sqrt(dh);
      m = Math.max(m, p[j]);
    }
    let z = 0;
    for (let j = 0; j < Tk; j++) { p[j] = Math.exp(p[j] - m); z += p[j]; }
    for (let j = 0; j < Tk; j++) p[j] /= z;
    rows.set(key, p);
    return p;
  };
  return (idx) => {
    const e = idx % dh, h = Math.floor(idx / dh) % H, i = Math.floor(idx / D) % Tq, b = Math.floor(idx / (D * Tq));
    const p = probs(b, i, h);
    let acc = 0;
    for (let j = 0; j < Tk; j++) acc += p[j] * v[(b * Tk + j) * D + h * dh + e];
    return acc;
  };
}

export interface ConvShape { B: number; Ci: number; H: number; W: number; Co: number; KH: number; KW: number; stride: number; pad: [number, number, number, number] }

export function convOutSize(s: ConvShape): { Ho: number; Wo: number } {
  const [pl, pr, pt, pb] = s.pad;
  return { Ho: Math.floor((s.H + pt + pb - s.KH) / s.stride) + 1, Wo: Math.floor((s.W + pl + pr - s.KW) / s.stride) + 1 };
}

/** NCHW cross-correlation with zero padding [left, right, top, bottom]: the element at flat index of [B, Co, Ho, Wo]. */
export function conv2dAt(x: Arr, w: Arr, bias: Arr | null, s: ConvShape): (idx: number) => number {
  const { Ho, Wo } = convOutSize(s);
  const [pl, , pt] = s.pad;
  return (idx) => {
    const ox = idx % Wo, oy = Math.floor(idx / Wo) % Ho, co = Math.floor(idx / (Wo * Ho)) % s.Co, b = Math.floor(idx / (Wo * Ho * s.Co));
    let acc = bias ? bias[co] : 0;
    for (let ci = 0; ci < s.Ci; ci++) for (let ky = 0; ky < s.KH; ky++) for (let kx = 0; kx < s.KW; kx++) {
      const iy = oy * s.stride + ky - pt, ix = ox * s.stride + kx - pl;
      if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) continue;
      acc += x[((b * s.Ci + ci) * s.H + iy) * s.W + ix] * w[((co * s.Ci + ci) * s.KH + ky) * s.KW + kx];
    }
    return acc;
  };
}

/** GroupNorm of x [B, C, HW] in G groups with a per-channel affine. */
export function groupNorm64(x: Arr, B: number, C: number, HW: number, G: number, w: Arr, bias: Arr, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  const cg = C / G, n = cg * HW;
  for (let b = 0; b < B; b++) for (let g = 0; g < G; g++) {
    const base = (b * C + g * cg) * HW;
    let m = 0;
    for (let i = 0; i < n; i++) m += x[base + i];
    m /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[base + i] - m) ** 2;
    const rs = 1 / Math.sqrt(v / n + eps);
    for (let i = 0; i < n; i++) { const c = g * cg + Math.floor(i / HW); out[base + i] = (x[base + i] - m) * rs * w[c] + bias[c]; }
  }
  return out;
}

/** Row-major strides. */
function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]; }
  return s;
}

/** NumPy broadcasting: the output shape and, per input, the flat input index of each flat output index. */
export function broadcastIndex(shapes: readonly (readonly number[])[]): { shape: number[]; index: (input: number, i: number) => number } {
  const rank = Math.max(...shapes.map((s) => s.length));
  const shape = Array.from({ length: rank }, (_, d) => Math.max(...shapes.map((s) => s[s.length - rank + d] ?? 1)));
  const outStrides = strides(shape);
  const inStrides = shapes.map((s) => { const st = strides(s); return shape.map((_, d) => { const k = d - (rank - s.length); return k < 0 || s[k] === 1 ? 0 : st[k]; }); });
  return {
    shape,
    index: (input, i) => {
      let o = 0;
      for (let d = 0; d < rank; d++) o += (Math.floor(i / outStrides[d]) % shape[d]) * inStrides[input][d];
      return o;
    },
  };
}

/** Reduction of x over `axes` with `f` from `init` (row-major, axes removed from the shape). */
export function reduce64(x: Arr, shape: readonly number[], axes: readonly number[], f: (acc: number, v: number) => number, init: number): Float64Array {
  const kept = shape.map((_, d) => !axes.includes(d));
  const outShape = shape.filter((_, d) => kept[d]);
  const out = new Float64Array(outShape.reduce((a, b) => a * b, 1)).fill(init);
  const st = strides(shape);
  for (let i = 0; i < x.length; i++) {
    let o = 0;
    for (let d = 0; d < shape.length; d++) if (kept[d]) o = o * shape[d] + (Math.floor(i / st[d]) % shape[d]);
    out[o] = f(out[o], x[i]);
  }
  return out;
}

/** x permuted: out[c] = x[c permuted back], as numpy.transpose(x, perm). */
export function permute64(x: Arr, shape: readonly number[], perm: readonly number[]): Float64Array {
  const outShape = perm.map((p) => shape[p]);
  const st = strides(shape), ost = strides(outShape);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    let src = 0;
    for (let d = 0; d < perm.length; d++) src += (Math.floor(i / ost[d]) % outShape[d]) * st[perm[d]];
    out[i] = x[src];
  }
  return out;
}

/** DiT-style patchify [B, C, H, W] → [B, (H/p)(W/p), C·p·p], each patch ordered (channel, i, j). */
export function patchify64(x: Arr, B: number, C: number, H: number, W: number, p: number): Float64Array {
  const gh = H / p, gw = W / p;
  const out = new Float64Array(x.length);
  let o = 0;
  for (let b = 0; b < B; b++) for (let r = 0; r < gh; r++) for (let c = 0; c < gw; c++) for (let ch = 0; ch < C; ch++) for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) out[o++] = x[((b * C + ch) * H + r * p + i) * W + c * p + j];
  return out;
}

/** DiT's unpatchify [B, g², p²·C] (patch vector ordered (i, j, channel)) → [B, C, g·p, g·p]. */
export function unpatchify64(x: Arr, B: number, g: number, p: number, C: number): Float64Array {
  const H = g * p;
  const out = new Float64Array(x.length);
  for (let b = 0; b < B; b++) for (let r = 0; r < g; r++) for (let c = 0; c < g; c++) for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) for (let ch = 0; ch < C; ch++) {
    out[((b * C + ch) * H + r * p + i) * H + c * p + j] = x[((b * g * g + r * g + c) * p * p + i * p + j) * C + ch];
  }
  return out;
}

/** KL(N(m1, e^lv1) ‖ N(m2, e^lv2)) elementwise, as the diffusion kernels. */
export const normalKl64 = (m1: number, lv1: number, m2: number, lv2: number) => 0.5 * (-1 + lv2 - lv1 + Math.exp(lv1 - lv2) + (m1 - m2) ** 2 * Math.exp(-lv2));

/** The discretized Gaussian log-likelihood of x ∈ [−1, 1] (bins of 2/255) under N(m, e^(2·ls)), as the diffusion kernels. */
export function dgll64(x: number, m: number, ls: number): number {
  const inv = Math.exp(-ls);
  const plus = approxCdf64(inv * (x - m + 1 / 255)), minus = approxCdf64(inv * (x - m - 1 / 255));
  if (x < -0.999) return Math.log(Math.max(plus, 1e-12));
  if (x > 0.999) return Math.log(Math.max(1 - minus, 1e-12));
  return Math.log(Math.max(plus - minus, 1e-12));
}
