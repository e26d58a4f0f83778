// Shape ops. Reshape is a view; everything that moves data (permute, slice, concat, pad, patchify) is one
// strided-copy kernel: iterate over a shape, read at source strides, write at destination strides.
import { Tensor, AssembledGradient, record, check, fmtShape, numel, type Shape } from '../engine/tensor.js';
import { uniforms, grid, gridArgs, launch, linearIndex, stridesOf } from './util.js';
import { normal, type Arr, type Family } from './reference.js';

const MAX_RANK = 8;

/** n elements of `shape` (up to MAX_RANK axes), read at source strides ss from srcBase, written at ds from dstBase. */
const CopyUniforms = uniforms({ n: 'u32', srcBase: 'u32', dstBase: 'u32', shape: 'array<vec4u, 2>', ss: 'array<vec4u, 2>', ds: 'array<vec4u, 2>' });
const copyKernel = (rank: number, dtype: string) => /* wgsl */`
${CopyUniforms.wgsl}
@group(0) @binding(1) var<storage, read> src: array<${dtype}>;
@group(0) @binding(2) var<storage, read_write> dst: array<${dtype}>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.n) { return; }
  var r = i; var so = u.srcBase; var dO = u.dstBase;
  ${Array.from({ length: rank }, (_, k) => {
    const d = rank - 1 - k;
    return `{ let s = u.shape[${d >> 2}][${d & 3}]; let c = r % s; r = r / s; so += c * u.ss[${d >> 2}][${d & 3}]; dO += c * u.ds[${d >> 2}][${d & 3}]; }`;
  }).join('\n  ')}
  dst[dO] = src[so];
}`;

/** dst[dstBase + Σ c·ds] = src[srcBase + Σ c·ss] for every coordinate c of `shape`. No autograd. */
export function stridedCopy(src: Tensor, dst: Tensor, shape: Shape, ss: number[], srcBase: number, ds: number[], dstBase: number): void {
  check(src.dtype === dst.dtype, 'copy', `dtype ${src.dtype} → ${dst.dtype}`);
  check(src.dtype !== 'f16', 'copy', 'f16 tensors cannot be copied element-wise (store as f32)');
  check(shape.length <= MAX_RANK, 'copy', `rank ${shape.length} over ${MAX_RANK}`);
  const n = numel(shape);
  if (n === 0) return;
  // Merge nothing, just pad to MAX_RANK with unit dims (the strides with zeros).
  const params = CopyUniforms.pack({ n, srcBase, dstBase, shape: [...shape, ...new Array(MAX_RANK - shape.length).fill(1)], ss, ds });
  const dt = src.dtype === 'i32' ? 'i32' : 'f32';
  launch('copy', copyKernel(Math.max(1, shape.length), dt), [src, dst], grid(n, 64), params);
}

// ------------------------------------------------------------------------------------------ reshape
export function reshape(x: Tensor, shape: Shape): Tensor {
  const s = [...shape];
  const neg = s.indexOf(-1);
  if (neg >= 0) s[neg] = x.size / Math.max(1, numel(s.filter((_, i) => i !== neg)));
  check(numel(s) === x.size && s.every((d) => Number.isInteger(d) && d >= 0), 'reshape', `cannot reshape ${fmtShape(x.shape)} (${x.size} elements) to ${fmtShape(shape)}`);
  const y = x.view(s);
  return record('reshape', y, [x], [], (g) => [g.view(x.shape)]);
}

// ------------------------------------------------------------------------------------------ permute
export function permute(x: Tensor, perm: number[]): Tensor {
  check(perm.length === x.ndim && [...perm].sort((a, b) => a - b).every((p, i) => p === i), 'permute', `${JSON.stringify(perm)} is not a permutation of the ${x.ndim} axes of ${fmtShape(x.shape)}`);
  const st = stridesOf(x.shape);
  const shape = perm.map((p) => x.shape[p]);
  const y = Tensor.empty(shape, x.dtype, 'permute');
  stridedCopy(x, y, shape, perm.map((p) => st[p]), 0, stridesOf(shape), 0);
  const inv = perm.map((_, i) => perm.indexOf(i));
  return record('permute', y, [x], [], (g) => [permute(g, inv)]);
}

/** Swaps two axes (a copy). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const perm = x.shape.map((_, i) => i);
  const ia = a < 0 ? a + x.ndim : a, ib = b < 0 ? b + x.ndim : b;
  [perm[ia], perm[ib]] = [perm[ib], perm[ia]];
  return permute(x, perm);
}

// ------------------------------------------------------------------------------------------ flip / rot90
/**
 * x reversed along `axes` (torch.flip): the strided copy reading those axes from their last element with a
 * negative stride, which the uniforms hold as its two's complement and the kernel's u32 arithmetic wraps back.
 */
export function flip(x: Tensor, axes: number[]): Tensor {
  const ax = axes.map((a) => (a < 0 ? a + x.ndim : a));
  check(ax.every((a) => a >= 0 && a < x.ndim) && new Set(ax).size === ax.length, 'flip', `axes ${JSON.stringify(axes)} of ${fmtShape(x.shape)}`);
  const st = stridesOf(x.shape);
  const y = Tensor.empty(x.shape, x.dtype, 'flip');
  const base = ax.reduce((b, a) => b + (x.shape[a] - 1) * st[a], 0);
  stridedCopy(x, y, x.shape, st.map((s, i) => (ax.includes(i) ? -s : s)), base, st, 0);
  return record('flip', y, [x], [], (g) => [flip(g, ax)]);
}

/** x rotated k quarter turns in the plane of axes a, b, from a towards b (torch.rot90): flips and a transpose. */
export function rot90(x: Tensor, k: number, [a, b]: [number, number] = [-2, -1]): Tensor {
  const turns = ((k % 4) + 4) % 4;
  if (turns === 2) return flip(x, [a, b]);
  if (turns === 0) return flip(x, []);
  const f = flip(x, [turns === 1 ? b : a]);
  const y = transpose(f, a, b);
  f.dispose();
  return y;
}

// ------------------------------------------------------------------------------------------ slice / pad / concat
/** x[..., start:end, ...] along `axis` (a copy). */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const ax = axis < 0 ? axis + x.ndim : axis;
  check(ax >= 0 && ax < x.ndim && start >= 0 && end <= x.shape[ax] && start <= end, 'slice', `[${start}:${end}] on axis ${axis} of ${fmtShape(x.shape)}`);
  const shape = x.shape.map((d, i) => (i === ax ? end - start : d));
  const st = stridesOf(x.shape);
  const y = Tensor.empty(shape, x.dtype, 'slice');
  stridedCopy(x, y, shape, st, start * st[ax], stridesOf(shape), 0);
  return record('slice', y, [x], [], (g) => [padAxis(g, ax, start, x.shape[ax] - end)]);
}

/** n output elements of `shape`; axis `axis` holds `before` zeros, then the len source elements (source strides ss). */
const PadUniforms = uniforms({ n: 'u32', axis: 'u32', before: 'u32', len: 'u32', shape: 'array<vec4u, 2>', ss: 'array<vec4u, 2>' });
const padKernel = (rank: number) => /* wgsl */`
${PadUniforms.wgsl}
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.n) { return; }
  var r = i; var so = 0u; var inside = true;
  ${Array.from({ length: rank }, (_, k) => {
    const d = rank - 1 - k;
    return `{ let s = u.shape[${d >> 2}][${d & 3}]; var c = r % s; r = r / s; if (u.axis == ${d}u) { inside = c >= u.before && c - u.before < u.len; c -= u.before; } so += c * u.ss[${d >> 2}][${d & 3}]; }`;
  }).join('\n  ')}
  var v = 0.0;
  if (inside) { v = src[so]; }
  dst[i] = v;
}`;

/** Zero-pads axis `axis` with `before` and `after` elements (one dispatch: every output element written once). */
export function padAxis(x: Tensor, axis: number, before: number, after: number): Tensor {
  const ax = axis < 0 ? axis + x.ndim : axis;
  check(x.dtype === 'f32' && x.ndim <= MAX_RANK, 'pad', `needs an f32 tensor of rank ≤ ${MAX_RANK}, got ${x.dtype} ${fmtShape(x.shape)}`);
  const shape = x.shape.map((d, i) => (i === ax ? d + before + after : d));
  const y = Tensor.empty(shape, 'f32', 'pad');
  const n = numel(shape);
  if (n) {
    const params = PadUniforms.pack({ n, axis: ax, before, len: x.shape[ax], shape: [...shape, ...new Array(MAX_RANK - shape.length).fill(1)], ss: stridesOf(x.shape) });
    launch('pad', padKernel(Math.max(1, shape.length)), [x, y], grid(n, 64), params);
  }
  return record('pad', y, [x], [], (g) => [slice(g, ax, before, before + x.shape[ax])]);
}

/** Zero padding of the last two axes (NCHW): [left, right, top, bottom], as torch's F.pad(x, (l, r, t, b)). */
export function pad2d(x: Tensor, [l, r, t, b]: [number, number, number, number]): Tensor {
  return padAxis(padAxis(x, -1, l, r), -2, t, b);
}

export function concat(xs: Tensor[], axis: number): Tensor {
  check(xs.length > 0, 'concat', 'no tensors');
  const ax = axis < 0 ? axis + xs[0].ndim : axis;
  for (const t of xs) {
    check(t.ndim === xs[0].ndim && t.dtype === xs[0].dtype && t.shape.every((d, i) => i === ax || d === xs[0].shape[i]), 'concat', `shapes ${xs.map((u) => fmtShape(u.shape)).join(', ')} differ outside axis ${axis}`);
  }
  const shape = xs[0].shape.map((d, i) => (i === ax ? xs.reduce((acc, t) => acc + t.shape[ax], 0) : d));
  const y = Tensor.empty(shape, xs[0].dtype, 'concat');
  const ds = stridesOf(shape);
  let off = 0;
  const offsets: number[] = [];
  for (const t of xs) {
    offsets.push(off);
    stridedCopy(t, y, t.shape, stridesOf(t.shape), 0, ds, off * ds[ax]);
    off += t.shape[ax];
  }
  return record('concat', y, xs, [], (g, _s, need) => xs.map((t, i) => (need[i] ? slice(g, ax, offsets[i], offsets[i] + t.shape[ax]) : null)));
}

/**
 * Splits `axis` into pieces of the given sizes (copies). The pieces' gradients land in one tensor
 * (`AssembledGradient`): the first to arrive pads itself to the input's shape (zeros where pieces that get no
 * gradient lie), the later ones copy into it in place.
 */
export function split(x: Tensor, sizes: number[], axis: number): Tensor[] {
  const ax = axis < 0 ? axis + x.ndim : axis;
  check(sizes.reduce((a, b) => a + b, 0) === x.shape[ax], 'split', `sizes ${JSON.stringify(sizes)} do not add up to ${x.shape[ax]} (axis ${axis} of ${fmtShape(x.shape)})`);
  const st = stridesOf(x.shape);
  const gradient = new AssembledGradient();
  let off = 0;
  return sizes.map((s) => {
    const start = off;
    off += s;
    const shape = x.shape.map((d, i) => (i === ax ? s : d));
    const y = Tensor.empty(shape, x.dtype, 'split');
    stridedCopy(x, y, shape, st, start * st[ax], stridesOf(shape), 0);
    return record('split', y, [x], [], (g) => {
      const { grad, fresh } = gradient.claim(() => padAxis(g, ax, start, x.shape[ax] - start - s));
      if (fresh) return [grad];
      stridedCopy(g, grad, g.shape, stridesOf(g.shape), 0, st, start * st[ax]);
      return [null];
    });
  });
}

/** Splits `axis` into `n` equal chunks (torch.chunk). */
export function chunk(x: Tensor, n: number, axis: number): Tensor[] {
  const ax = axis < 0 ? axis + x.ndim : axis;
  check(x.shape[ax] % n === 0, 'chunk', `axis ${axis} of ${fmtShape(x.shape)} is not divisible by ${n}`);
  return split(x, new Array(n).fill(x.shape[ax] / n), ax);
}

// ------------------------------------------------------------------------------------------ patches
/**
 * [B, C, H, W] → [B, T, C·p·p] with T = (H/p)·(W/p) row-major over the patch grid and each patch vector
 * ordered (channel, i, j): the layout of a Conv2d(k = s = p) flattened as in ViT/DiT.
 */
export function patchify(x: Tensor, p: number): Tensor {
  check(x.ndim === 4 && x.shape[2] % p === 0 && x.shape[3] % p === 0, 'patchify', `input ${fmtShape(x.shape)} is not [B,C,H,W] with H, W divisible by ${p}`);
  const [B, C, H, W] = x.shape;
  const gh = H / p, gw = W / p;
  const v = reshape(x, [B, C, gh, p, gw, p]);
  const t = permute(v, [0, 2, 4, 1, 3, 5]);
  v.dispose();
  const y = reshape(t, [B, gh * gw, C * p * p]);
  t.dispose();
  return y;
}

/** [B, T, p·p·C] (patch vector ordered (i, j, channel), as DiT's final layer) → [B, C, g·p, g·p]. */
export function unpatchify(x: Tensor, p: number, C: number): Tensor {
  const [B, T, F] = x.shape;
  const g = Math.round(Math.sqrt(T));
  check(x.ndim === 3 && g * g === T && F === p * p * C, 'unpatchify', `input ${fmtShape(x.shape)} is not [B, g², p²·${C}] for p=${p}`);
  const v = reshape(x, [B, g, g, p, p, C]);
  const t = permute(v, [0, 5, 1, 3, 2, 4]);
  v.dispose();
  const y = reshape(t, [B, C, g * p, g * p]);
  t.dispose();
  return y;
}

// ------------------------------------------------------------------------------------------ the family (kernels/registry.ts)
/** x permuted: out[c] = x[c permuted back], as numpy.transpose(x, perm). */
function permute64(x: Arr, shape: readonly number[], perm: readonly number[]): Float64Array {
  const outShape = perm.map((p) => shape[p]);
  const st = stridesOf(shape), ost = stridesOf(outShape);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    let src = 0;
    for (let d = 0; d < perm.length; d++) src += (Math.floor(i / ost[d]) % outShape[d]) * st[perm[d]];
    out[i] = x[src];
  }
  return out;
}

/** x reversed along `axes`: out[c] = x[c with c_a → n_a − 1 − c_a for each a in axes]. */
function flip64(x: Arr, shape: readonly number[], axes: readonly number[]): Float64Array {
  const st = stridesOf(shape);
  return Float64Array.from({ length: x.length }, (_, i) => {
    let src = 0;
    for (let d = 0; d < shape.length; d++) { const c = Math.floor(i / st[d]) % shape[d]; src += (axes.includes(d) ? shape[d] - 1 - c : c) * st[d]; }
    return x[src];
  });
}

/**
 * [..., H, W] turned k quarter turns as torch.rot90(x, k, (-2, -1)): one turn puts out[i][j] = x[j][W − 1 − i]
 * (the last column becomes the first row); k turns repeat it.
 */
function rot90Last64(x: Arr, shape: readonly number[], k: number): Float64Array {
  let cur = Float64Array.from(x), s = [...shape];
  for (let t = 0; t < ((k % 4) + 4) % 4; t++) {
    const H = s[s.length - 2], W = s[s.length - 1], next = new Float64Array(cur.length);
    for (let o = 0; o < cur.length / (H * W); o++) for (let i = 0; i < W; i++) for (let j = 0; j < H; j++) next[o * H * W + i * H + j] = cur[o * H * W + j * W + W - 1 - i];
    cur = next;
    s = [...s.slice(0, -2), W, H];
  }
  return cur;
}

/** DiT-style patchify [B, C, H, W] → [B, (H/p)(W/p), C·p·p], each patch ordered (channel, i, j). */
function patchify64(x: Arr, B: number, C: number, H: number, W: number, p: number): Float64Array {
  const gh = H / p, gw = W / p;
  const out = new Float64Array(x.length);
  let o = 0;
  for (let b = 0; b < B; b++) for (let r = 0; r < gh; r++) for (let c = 0; c < gw; c++) for (let ch = 0; ch < C; ch++) for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) out[o++] = x[((b * C + ch) * H + r * p + i) * W + c * p + j];
  return out;
}

/** DiT's unpatchify [B, g², p²·C] (patch vector ordered (i, j, channel)) → [B, C, g·p, g·p]. */
function unpatchify64(x: Arr, B: number, g: number, p: number, C: number): Float64Array {
  const H = g * p;
  const out = new Float64Array(x.length);
  for (let b = 0; b < B; b++) for (let r = 0; r < g; r++) for (let c = 0; c < g; c++) for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) for (let ch = 0; ch < C; ch++) {
    out[((b * C + ch) * H + r * p + i) * H + c * p + j] = x[((b * g * g + r * g + c) * p * p + i * p + j) * C + ch];
  }
  return out;
}

type ShapeProblem =
  | { op: 'permute'; shape: number[]; perm: number[]; dtype: 'f32' | 'i32' }
  | { op: 'flip'; shape: number[]; axes: number[]; dtype: 'f32' | 'i32' }
  | { op: 'rot90'; shape: number[]; k: number }
  | { op: 'slice'; shape: number[]; axis: number; start: number; end: number }
  | { op: 'concat'; shapes: number[][]; axis: number }
  | { op: 'split'; shape: number[]; axis: number; sizes: number[] }
  | { op: 'pad'; shape: number[]; pad: [number, number, number, number] }
  | { op: 'patchify'; shape: number[]; p: number }
  | { op: 'unpatchify'; B: number; g: number; p: number; C: number };

export const shapeFamily: Family<ShapeProblem> = {
  name: 'shape',
  file: 'kernels/shape.ts',
  variants: {
    permute: 'permute (numpy.transpose) through the strided copy; f32 and i32',
    flip: 'reversal of axes (torch.flip): the strided copy with negative strides',
    rot90: 'quarter turns of the last two axes (torch.rot90)',
    slice: 'a range of one axis',
    concat: 'concatenation along an axis',
    split: 'pieces along an axis; their gradients written into one tensor',
    pad: 'zero padding of the last two axes (F.pad)',
    patchify: '[B, C, H, W] → [B, T, C·p·p] as DiT',
    unpatchify: "[B, T, p·p·C] → [B, C, H, W] as DiT's final layer",
  },
  unsupported: () => null,
  problems: (v) => {
    switch (v) {
      case 'permute': return [{ op: 'permute', shape: [2, 3, 4, 5], perm: [2, 0, 3, 1], dtype: 'f32' }, { op: 'permute', shape: [3, 7], perm: [1, 0], dtype: 'i32' }];
      case 'flip': return [{ op: 'flip', shape: [2, 3, 4, 5], axes: [3, 1], dtype: 'f32' }, { op: 'flip', shape: [5, 6], axes: [0], dtype: 'i32' }, { op: 'flip', shape: [3, 2], axes: [], dtype: 'f32' }];
      case 'rot90': return [1, 2, 3, -1, 4].map((k) => ({ op: 'rot90' as const, shape: [2, 3, 4, 5], k }));
      case 'slice': return [{ op: 'slice', shape: [3, 4, 5], axis: 1, start: 1, end: 3 }, { op: 'slice', shape: [9, 2], axis: 0, start: 4, end: 9 }];
      case 'concat': return [{ op: 'concat', shapes: [[2, 3, 5], [2, 1, 5], [2, 4, 5]], axis: 1 }];
      case 'split': return [{ op: 'split', shape: [2, 7, 3], axis: 1, sizes: [2, 4, 1] }, { op: 'split', shape: [6, 5], axis: 0, sizes: [3, 3] }];
      case 'pad': return [{ op: 'pad', shape: [2, 3, 4, 5], pad: [0, 1, 2, 1] }];
      case 'patchify': return [{ op: 'patchify', shape: [2, 3, 4, 6], p: 2 }];
      default: return [{ op: 'unpatchify', B: 2, g: 3, p: 2, C: 3 }];
    }
  },
  describe: (p) => `${p.op} ${JSON.stringify({ ...p, op: undefined })}`,
  inputs: (p, seed) => {
    switch (p.op) {
      case 'permute': case 'flip': return p.dtype === 'i32' ? [{ shape: p.shape, data: Int32Array.from({ length: numel(p.shape) }, (_, i) => i * 7 - 40) }] : [normal(p.shape, seed)];
      case 'concat': return p.shapes.map((s, k) => normal(s, seed + k));
      case 'unpatchify': return [normal([p.B, p.g * p.g, p.p * p.p * p.C], seed)];
      default: return [normal(p.shape, seed)];
    }
  },
  reference: (p, x) => {
    switch (p.op) {
      case 'permute': return [permute64(x[0], p.shape, p.perm)];
      case 'flip': return [flip64(x[0], p.shape, p.axes)];
      case 'rot90': return [rot90Last64(x[0], p.shape, p.k)];
      case 'slice': {
        const inner = numel(p.shape.slice(p.axis + 1)), outer = numel(p.shape.slice(0, p.axis)), len = p.end - p.start;
        return [Float64Array.from({ length: outer * len * inner }, (_, i) => x[0][(Math.floor(i / (len * inner)) * p.shape[p.axis] + p.start + (Math.floor(i / inner) % len)) * inner + (i % inner)])];
      }
      case 'concat': {
        const out: number[] = [];
        const outer = numel(p.shapes[0].slice(0, p.axis));
        for (let o = 0; o < outer; o++) p.shapes.forEach((s, k) => { const n = numel(s.slice(p.axis)); for (let i = 0; i < n; i++) out.push(x[k][o * n + i]); });
        return [Float64Array.from(out)];
      }
      case 'split': {
        const inner = numel(p.shape.slice(p.axis + 1)), outer = numel(p.shape.slice(0, p.axis)), D = p.shape[p.axis];
        let start = 0;
        return p.sizes.map((len) => {
          const s0 = start;
          start += len;
          return Float64Array.from({ length: outer * len * inner }, (_, i) => x[0][(Math.floor(i / (len * inner)) * D + s0 + (Math.floor(i / inner) % len)) * inner + (i % inner)]);
        });
      }
      case 'pad': {
        const [l, r, t, b] = p.pad, [B, C, H, W] = p.shape, Ho = H + t + b, Wo = W + l + r;
        return [Float64Array.from({ length: B * C * Ho * Wo }, (_, i) => {
          const xx = (i % Wo) - l, y = (Math.floor(i / Wo) % Ho) - t, bc = Math.floor(i / (Wo * Ho));
          return xx < 0 || xx >= W || y < 0 || y >= H ? 0 : x[0][(bc * H + y) * W + xx];
        })];
      }
      case 'patchify': return [patchify64(x[0], p.shape[0], p.shape[1], p.shape[2], p.shape[3], p.p)];
      case 'unpatchify': return [unpatchify64(x[0], p.B, p.g, p.p, p.C)];
    }
  },
  run: (p, x) => {
    switch (p.op) {
      case 'permute': return [permute(x[0], p.perm)];
      case 'flip': return [flip(x[0], p.axes)];
      case 'rot90': return [rot90(x[0], p.k)];
      case 'slice': return [slice(x[0], p.axis, p.start, p.end)];
      case 'concat': return [concat(x, p.axis)];
      case 'split': return split(x[0], p.sizes, p.axis);
      case 'pad': return [pad2d(x[0], p.pad)];
      case 'patchify': return [patchify(x[0], p.p)];
      case 'unpatchify': return [unpatchify(x[0], p.p, p.C)];
    }
  },
  tolerance: () => 0,
};
