// conv2d (NCHW, any kernel size, stride, asymmetric zero padding) and its backward (dX, dW, dbias); nearest ×2
// upsampling and 2×2 average pooling with their backward.
//
// Variants: `direct` (each lane computes a run of output pixels for a block of output channels, no im2col
// buffer), `directg` (the same with the weights loaded once per subgroup and broadcast), `im2col` (im2col +
// the tuned matmul, in chunks so no operand exceeds the binding limit; its dX is col2im, a gather). The
// direct variants compute dX of stride-1 convolutions as a direct convolution with the flipped weights,
// col2im otherwise; dW is always im2col + matmul.
import { gpu } from '../engine/device.js';
import { Tensor, record, check, fmtShape } from '../engine/tensor.js';
import { uniforms, grid, gridArgs, launch, linearIndex } from './util.js';
import { matmul } from './matmul.js';
import { map, zeros } from './elementwise.js';
import { sum } from './reduce.js';
import { stridedCopy, slice } from './shape.js';
import { tunedVariant } from './tuning.js';
import { described, normal, type Arr, type Family } from './reference.js';

export type Conv2dVariant = 'direct' | 'directg' | 'im2col';
export const CONV2D_VARIANTS: Conv2dVariant[] = ['direct', 'directg', 'im2col'];

export interface Conv2dOptions {
  stride?: number;
  /** Zero padding [left, right, top, bottom], or one number for all sides (torch's `padding`). */
  padding?: number | [number, number, number, number];
  /** Forces a variant (tests, benchmarks), for the backward as well. */
  variant?: Conv2dVariant;
}

/** One convolution problem: input [B, Ci, H, W], weight [Co, Ci, KH, KW], stride, padding [l, r, t, b], bias. */
export interface Conv2dProblem { B: number; Ci: number; H: number; W: number; Co: number; KH: number; KW: number; stride: number; pad: [number, number, number, number]; bias: boolean }

export const convKey = (p: Conv2dProblem) => `${p.B}x${p.Ci}x${p.H}x${p.W}→${p.Co} ${p.KH}x${p.KW}s${p.stride}p${p.pad.join(',')}`;

/** Why `variant` cannot run on this adapter (null when it can). */
export function conv2dUnsupported(variant: Conv2dVariant): string | null {
  if (variant === 'directg' && !subgroups()) return `weights shared by subgroup broadcast need subgroups of at least 4 lanes (this adapter: ${gpu().hasSubgroups ? gpu().adapter.subgroupMinSize : 'no subgroups'})`;
  return null;
}

/** The default: the direct kernel, with subgroup-shared weights where the adapter has subgroups. */
export function defaultConv2dVariant(): Conv2dVariant {
  return subgroups() ? 'directg' : 'direct';
}

/** The variant the automatic choice takes: a tuned one for this adapter, else the default. */
export function chooseConv2d(p: Conv2dProblem): Conv2dVariant {
  return (tunedVariant('conv2d', convKey(p), p) as Conv2dVariant | undefined) ?? defaultConv2dVariant();
}

interface Geometry { B: number; Ci: number; H: number; W: number; Co: number; KH: number; KW: number; s: number; pl: number; pt: number; Ho: number; Wo: number }

/** The geometry, and the chunk: nc rows (im2col) or images (im2colT) from n0. */
const GeometryUniforms = uniforms({
  B: 'u32', Ci: 'u32', H: 'u32', W: 'u32', Co: 'u32', KH: 'u32', KW: 'u32', s: 'u32', pl: 'u32', pt: 'u32', Ho: 'u32', Wo: 'u32', n0: 'u32', nc: 'u32',
});

/**
 * col[n − n0, (ci, ky, kx)] = x[b, ci, oy·s + ky − pt, ox·s + kx − pl] (0 outside), n = b·Ho·Wo + oy·Wo + ox.
 * One lane per (n, ci) writes its KH·KW taps, so the index arithmetic is done once per tap row.
 */
const IM2COL = (KH: number, KW: number) => /* wgsl */`
${GeometryUniforms.wgsl}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> COL: array<f32>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.nc * u.Ci) { return; }
  let ci = i % u.Ci;
  let n = u.n0 + i / u.Ci;
  let hw = u.Ho * u.Wo;
  let b = n / hw; let p = n % hw;
  let oy = p / u.Wo; let ox = p % u.Wo;
  let y0 = i32(oy * u.s) - i32(u.pt);
  let x0 = i32(ox * u.s) - i32(u.pl);
  let xb = (b * u.Ci + ci) * u.H;
  let ob = i * ${KH * KW}u;
  for (var ky = 0; ky < ${KH}; ky++) {
    let iy = y0 + ky;
    let rowOk = iy >= 0 && iy < i32(u.H);
    let rb = (xb + u32(max(iy, 0))) * u.W;
    for (var kx = 0; kx < ${KW}; kx++) {
      let ix = x0 + kx;
      var v = 0.0;
      if (rowOk && ix >= 0 && ix < i32(u.W)) { v = X[rb + u32(ix)]; }
      COL[ob + u32(ky * ${KW} + kx)] = v;
    }
  }
}`;

/** colT[b − b0, (ci, ky, kx), pixel] = x[b, ci, oy·s + ky − pt, ox·s + kx − pl] (0 outside): im2col with the pixel
 * index fastest, so dY [Co, pixels] multiplies it without a transposition. */
const IM2COL_T = /* wgsl */`
${GeometryUniforms.wgsl}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> COL: array<f32>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  // One lane per output row (b, k, oy): the index arithmetic once, then a contiguous run of Wo outputs.
  let i = ${linearIndex(64)};
  let K = u.Ci * u.KH * u.KW;
  if (i >= u.nc * K * u.Ho) { return; }
  let oy = i % u.Ho;
  let k = (i / u.Ho) % K;
  let b = u.n0 + i / (u.Ho * K);
  let ci = k / (u.KH * u.KW); let kk = k % (u.KH * u.KW);
  let iy = i32(oy * u.s + kk / u.KW) - i32(u.pt);
  let kx = i32(kk % u.KW) - i32(u.pl);
  let ob = i * u.Wo;
  if (iy < 0 || iy >= i32(u.H)) {
    for (var ox = 0u; ox < u.Wo; ox++) { COL[ob + ox] = 0.0; }
    return;
  }
  let rb = ((b * u.Ci + ci) * u.H + u32(iy)) * u.W;
  for (var ox = 0u; ox < u.Wo; ox++) {
    let ix = i32(ox * u.s) + kx;
    COL[ob + ox] = select(0.0, X[rb + u32(clamp(ix, 0, i32(u.W) - 1))], ix >= 0 && ix < i32(u.W));
  }
}`;

/** dX[b, ci, iy, ix] += Σ_(ky,kx) dcol[n − n0, (ci, ky, kx)] over the output pixels n of this chunk that read it. */
const COL2IM = /* wgsl */`
${GeometryUniforms.wgsl}
@group(0) @binding(1) var<storage, read> DCOL: array<f32>;
@group(0) @binding(2) var<storage, read_write> DX: array<f32>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  // Only the images this chunk touches.
  let hw = u.Ho * u.Wo;
  let b0 = u.n0 / hw;
  let b1 = (u.n0 + u.nc - 1u) / hw;
  let per = u.Ci * u.H * u.W;
  if (i >= (b1 - b0 + 1u) * per) { return; }
  let b = b0 + i / per;
  let r = i % per;
  let ci = r / (u.H * u.W);
  let iy = (r / u.W) % u.H;
  let ix = r % u.W;
  let K = u.Ci * u.KH * u.KW;
  var acc = 0.0;
  for (var ky = 0u; ky < u.KH; ky++) {
    let ty = i32(iy + u.pt) - i32(ky);
    if (ty < 0 || ty % i32(u.s) != 0) { continue; }
    let oy = u32(ty) / u.s;
    if (oy >= u.Ho) { continue; }
    for (var kx = 0u; kx < u.KW; kx++) {
      let tx = i32(ix + u.pl) - i32(kx);
      if (tx < 0 || tx % i32(u.s) != 0) { continue; }
      let ox = u32(tx) / u.s;
      if (ox >= u.Wo) { continue; }
      let n = b * hw + oy * u.Wo + ox;
      if (n < u.n0 || n >= u.n0 + u.nc) { continue; }
      acc += DCOL[(n - u.n0) * K + (ci * u.KH + ky) * u.KW + kx];
    }
  }
  let o = b * per + r;
  DX[o] = DX[o] + acc;
}`;

function geometry(x: Tensor, w: Tensor, o: Conv2dOptions): Geometry {
  const op = 'conv2d';
  check(x.ndim === 4 && x.dtype === 'f32', op, `input must be f32 [B, C, H, W], got ${x.dtype} ${fmtShape(x.shape)}`);
  check(w.ndim === 4 && w.dtype === 'f32', op, `weight must be f32 [Co, Ci, KH, KW], got ${w.dtype} ${fmtShape(w.shape)}`);
  const [B, Ci, H, W] = x.shape;
  const [Co, Ci2, KH, KW] = w.shape;
  check(Ci === Ci2, op, `input has ${Ci} channels but the weight ${fmtShape(w.shape)} expects ${Ci2}`);
  const s = o.stride ?? 1;
  const [pl, pr, pt, pb] = typeof o.padding === 'number' ? [o.padding, o.padding, o.padding, o.padding] : o.padding ?? [0, 0, 0, 0];
  const Ho = Math.floor((H + pt + pb - KH) / s) + 1, Wo = Math.floor((W + pl + pr - KW) / s) + 1;
  check(Ho > 0 && Wo > 0, op, `input ${fmtShape(x.shape)} is smaller than the ${KH}×${KW} kernel with padding [${pl},${pr},${pt},${pb}]`);
  return { B, Ci, H, W, Co, KH, KW, s, pl, pt, Ho, Wo };
}

/** The direct kernel's geometry: `groups` lanes of output pixel runs, hasBias 0 or 1, output channels padded to CoPad. */
const DirectUniforms = uniforms({ B: 'u32', Ci: 'u32', H: 'u32', W: 'u32', Co: 'u32', Ho: 'u32', Wo: 'u32', pl: 'u32', pt: 'u32', groups: 'u32', hasBias: 'u32', CoPad: 'u32' });

/**
 * Direct convolution: each lane computes R consecutive output pixels of one row for C output channels shared
 * by the workgroup. Per (ci, ky) a lane loads the input span its R pixels need once (scalar loads, zero
 * outside) and the KW·C weights [ci, ky, ·, co0..] are loaded once per subgroup and broadcast (sg > 0) — the
 * load-count economy that CPU drivers reward, with no im2col buffer.
 */
function directKernel(KH: number, KW: number, s: number, R: number, C: number, sg: number): string {
  const SPAN = (R - 1) * s + KW;
  const NV = (KW * C) / 4; // vec4s of weights per (ci, ky)
  const loadW: string[] = [];
  if (sg) {
    const T = Math.ceil(NV / sg);
    for (let t = 0; t < T; t++) {
      loadW.push(`let wv${t}i = min(${t * sg}u + sgid, ${NV - 1}u);`);
      loadW.push(`let wl${t} = Wt4[(wrow + (wv${t}i / ${C / 4}u) * u.CoPad + (wv${t}i % ${C / 4}u) * 4u) >> 2u];`);
    }
    for (let v = 0; v < NV; v++) loadW.push(`let wv${v} = subgroupBroadcast(wl${Math.floor(v / sg)}, ${v % sg}u);`);
  } else {
    for (let v = 0; v < NV; v++) loadW.push(`let wv${v} = Wt4[(wrow + ${Math.floor(v / (C / 4))}u * u.CoPad + ${(v % (C / 4)) * 4}u) >> 2u];`);
  }
  const fmas: string[] = [];
  for (let kx = 0; kx < KW; kx++) for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) {
    const v = (kx * C + c) >> 2, comp = (kx * C + c) & 3;
    fmas.push(`acc${r}_${c} = fma(sp${r * s + kx}, wv${v}[${comp}], acc${r}_${c});`);
  }
  return /* wgsl */`
${sg ? 'enable subgroups;' : ''}
${DirectUniforms.wgsl}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Wt4: array<vec4f>;
@group(0) @binding(3) var<storage, read> BIAS: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u${sg ? ', @builtin(subgroup_invocation_id) sgid: u32' : ''}) {
  // lane → (b, oy, x-group); clamped lanes compute garbage that is not stored.
  let gidx = wid.x * 64u + lid.x;
  let xg = (u.Wo + ${R - 1}u) / ${R}u;
  let lane = min(gidx, u.groups - 1u);
  let b = lane / (u.Ho * xg);
  let oy = (lane / xg) % u.Ho;
  let ox0 = (lane % xg) * ${R}u;
  let co0 = wid.y * ${C}u;
  ${Array.from({ length: R }, (_, r) => Array.from({ length: C }, (_, c) => `var acc${r}_${c} = 0.0;`).join(' ')).join('\n  ')}
  let x0 = i32(ox0 * ${s}u) - i32(u.pl);
  for (var ci = 0u; ci < u.Ci; ci++) {
    let xb = (b * u.Ci + ci) * u.H;
    for (var ky = 0u; ky < ${KH}u; ky++) {
      let iy = i32(oy * ${s}u + ky) - i32(u.pt);
      let rowOk = iy >= 0 && iy < i32(u.H);
      let rb = (xb + u32(clamp(iy, 0, i32(u.H) - 1))) * u.W;
      ${Array.from({ length: SPAN }, (_, j) => `let sp${j} = select(0.0, X[rb + u32(clamp(x0 + ${j}, 0, i32(u.W) - 1))], rowOk && x0 + ${j} >= 0 && x0 + ${j} < i32(u.W));`).join('\n      ')}
      let wrow = ((ci * ${KH}u + ky) * ${KW}u) * u.CoPad + co0;
      ${loadW.join('\n      ')}
      ${fmas.join('\n      ')}
    }
  }
  if (gidx >= u.groups) { return; }
  ${Array.from({ length: C }, (_, c) => `if (co0 + ${c}u < u.Co) {
    let bias${c} = select(0.0, BIAS[co0 + ${c}u], u.hasBias != 0u);
    let yb${c} = ((b * u.Co + co0 + ${c}u) * u.Ho + oy) * u.Wo + ox0;
    ${Array.from({ length: R }, (_, r) => `if (ox0 + ${r}u < u.Wo) { Y[yb${c} + ${r}u] = acc${r}_${c} + bias${c}; }`).join(' ')}
  }`).join('\n  ')}
}`;
}

/** Weights rearranged for the direct kernel: [ci, ky, kx, co] (co padded to a multiple of C), optionally as
 * the stride-1 transposed convolution's weights (spatially flipped, ci ↔ co). */
const WeightsUniforms = uniforms({ Co: 'u32', Ci: 'u32', KH: 'u32', KW: 'u32', CoPad: 'u32', n: 'u32' });
const WEIGHTS_T = (flip: boolean) => /* wgsl */`
${WeightsUniforms.wgsl}
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read_write> WT: array<f32>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.n) { return; }
  // output index over [A, KH, KW, CoPad] where (A, out-channel) = (ci, co) or, flipped, (co, ci)
  let oc = i % u.CoPad;
  let kx = (i / u.CoPad) % u.KW;
  let ky = (i / (u.CoPad * u.KW)) % u.KH;
  let a = i / (u.CoPad * u.KW * u.KH);
  ${flip
    ? `let co = a; let ci = oc; let valid = ci < u.Ci;
  let src = ((co * u.Ci + min(ci, u.Ci - 1u)) * u.KH + (u.KH - 1u - ky)) * u.KW + (u.KW - 1u - kx);`
    : `let ci = a; let co = oc; let valid = co < u.Co;
  let src = ((min(co, u.Co - 1u) * u.Ci + ci) * u.KH + ky) * u.KW + kx;`}
  WT[i] = select(0.0, W[src], valid);
}`;

const DIRECT_R = 4, DIRECT_C = 16;

function subgroups(): number {
  const g = gpu();
  return g.hasSubgroups && g.adapter.subgroupMinSize >= 4 ? g.adapter.subgroupMinSize : 0;
}

/**
 * y = conv(x, w) + bias with the direct kernel (weights shared by subgroup broadcast when `shared`); `flip`
 * runs the stride-1 transposed convolution of w instead.
 */
function directConv(x: Tensor, w: Tensor, bias: Tensor | null, s: number, pad: [number, number, number, number], flip: boolean, shared: boolean): Tensor {
  const [B, Ci, H, W] = x.shape;
  const [Wco, Wci, KH, KW] = w.shape;
  const Co = flip ? Wci : Wco;
  const [pl, pr, pt, pb] = pad;
  const Ho = Math.floor((H + pt + pb - KH) / s) + 1, Wo = Math.floor((W + pl + pr - KW) / s) + 1;
  const CoPad = Math.ceil(Co / DIRECT_C) * DIRECT_C;
  const wt = Tensor.empty([Ci, KH, KW, CoPad], 'f32', 'conv2d.weights');
  const n = wt.size;
  launch('conv2d.weights', WEIGHTS_T(flip), [w, wt], grid(n, 64), WeightsUniforms.pack({ Co: Wco, Ci: Wci, KH, KW, CoPad, n }));
  const y = Tensor.empty([B, Co, Ho, Wo], 'f32', 'conv2d');
  const groups = B * Ho * Math.ceil(Wo / DIRECT_R);
  const b = bias ?? wt;
  launch('conv2d', directKernel(KH, KW, s, DIRECT_R, DIRECT_C, shared ? subgroups() : 0), [x, wt, b, y], [Math.ceil(groups / 64), CoPad / DIRECT_C], DirectUniforms.pack({ B, Ci, H, W, Co, Ho, Wo, pl, pt, groups, hasBias: bias ? 1 : 0, CoPad }), `${KH}x${KW}s${s} ${Ci}→${Co} ${H}x${W}`);
  wt.dispose();
  return y;
}

let chunkBytes = 64 * 2 ** 20;

/** Caps the bytes of one im2col chunk (tests use a small cap to exercise chunking). */
export function setConvChunkBytes(bytes: number): void { chunkBytes = bytes; }

/** Chunks of the flattened (b, output pixel) index so that an im2col chunk stays under the binding limit. */
function chunks(g: Geometry): [number, number][] {
  const K = g.Ci * g.KH * g.KW;
  const limit = Math.min(gpu().maxBindingBytes, chunkBytes);
  const perChunk = Math.max(1, Math.floor(limit / (4 * Math.max(K, g.Co))));
  const total = g.B * g.Ho * g.Wo;
  const out: [number, number][] = [];
  for (let n0 = 0; n0 < total; n0 += perChunk) out.push([n0, Math.min(perChunk, total - n0)]);
  return out;
}

function im2col(x: Tensor, g: Geometry, n0: number, nc: number): Tensor {
  const K = g.Ci * g.KH * g.KW;
  const col = Tensor.empty([nc, K], 'f32', 'im2col');
  launch('conv2d.im2col', IM2COL(g.KH, g.KW), [x, col], grid(nc * g.Ci, 64), GeometryUniforms.pack({ ...g, n0, nc }));
  return col;
}

/** Copies rows [n0, n0 + nc) of a [N, Co] chunk layout to/from an NCHW tensor (N = b·HoWo + pixel). */
function chunkCopy(src: Tensor, dst: Tensor, g: Geometry, n0: number, nc: number, toNchw: boolean): void {
  // Iterate (row n in chunk, co): NCHW offset = b·Co·HW + co·HW + p, with b, p from n. Rows of one chunk
  // may span images: copy image by image.
  const HW = g.Ho * g.Wo;
  let n = n0;
  while (n < n0 + nc) {
    const b = Math.floor(n / HW), p = n % HW;
    const len = Math.min(HW - p, n0 + nc - n);
    const rowOff = (n - n0) * g.Co;
    const nchwOff = b * g.Co * HW + p;
    if (toNchw) stridedCopy(src, dst, [len, g.Co], [g.Co, 1], rowOff, [1, HW], nchwOff);
    else stridedCopy(src, dst, [len, g.Co], [1, HW], nchwOff, [g.Co, 1], rowOff);
    n += len;
  }
}

/** y = conv(x, w) + bias as im2col + matmul (bias fused in its epilogue), chunk by chunk of output pixels. */
function im2colConv(x: Tensor, w: Tensor, bias: Tensor | null, g: Geometry): Tensor {
  const K = g.Ci * g.KH * g.KW;
  const w2 = w.view([g.Co, K]);
  const y = Tensor.empty([g.B, g.Co, g.Ho, g.Wo], 'f32', 'conv2d');
  for (const [n0, nc] of chunks(g)) {
    const col = im2col(x, g, n0, nc);
    const part = matmul(col, w2, { transB: true, bias: bias ?? undefined }); // [nc, Co]
    chunkCopy(part, y, g, n0, nc, true);
    col.dispose(); part.dispose();
  }
  w2.dispose();
  return y;
}

/** 2-D convolution (cross-correlation, as torch) of x [B, Ci, H, W] with w [Co, Ci, KH, KW] (+ bias [Co]). */
export function conv2d(x: Tensor, w: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  const g = geometry(x, w, opts);
  if (bias) check(bias.size === g.Co, 'conv2d', `bias must have ${g.Co} elements, got ${fmtShape(bias.shape)}`);
  const K = g.Ci * g.KH * g.KW;
  const pad: [number, number, number, number] = typeof opts.padding === 'number' ? [opts.padding, opts.padding, opts.padding, opts.padding] : opts.padding ?? [0, 0, 0, 0];
  const variant = opts.variant ?? chooseConv2d({ B: g.B, Ci: g.Ci, H: g.H, W: g.W, Co: g.Co, KH: g.KH, KW: g.KW, stride: g.s, pad, bias: !!bias });
  const shared = variant === 'directg';
  const out = variant === 'im2col' ? im2colConv(x, w, bias, g) : directConv(x, w, bias, g.s, pad, false, shared);
  const inputs = bias ? [x, w, bias] : [x, w];
  return record('conv2d', out, inputs, [x, w], (gy, [xs, ws], need) => {
    const w2 = ws.view([g.Co, K]);
    // dX: for stride 1 (direct variants) a convolution of dY with the flipped, transposed weights (padding
    // K−1−p); otherwise a gather over the im2col gradient (col2im).
    const flipped = g.s === 1 && variant !== 'im2col';
    const dx = need[0] ? (flipped ? directConv(gy, ws, null, 1, [g.KW - 1 - pad[0], g.KW - 1 - pad[1], g.KH - 1 - pad[2], g.KH - 1 - pad[3]], true, shared) : zeros(x.shape)) : null;
    let dw: Tensor | null = need[1] ? zeros([g.Co, K]) : null;
    const HW = g.Ho * g.Wo;
    const perImage = 4 * K * HW;
    // dW per group of whole images: im2col in [b, K, pixel] layout, then dY_b [Co, HW] · col_bᵀ batched over b
    // (dY read as it is, NCHW); the per-row chunked path below only for images too large for one binding.
    const imagesPerChunk = Math.floor(Math.min(gpu().maxBindingBytes, chunkBytes) / perImage);
    if (dw && imagesPerChunk >= 1) {
      for (let b0 = 0; b0 < g.B; b0 += imagesPerChunk) {
        const nb = Math.min(imagesPerChunk, g.B - b0);
        const colT = Tensor.empty([nb, K, HW], 'f32', 'conv2d.im2colT');
        launch('conv2d.im2colT', IM2COL_T, [xs, colT], grid(nb * K * g.Ho, 64), GeometryUniforms.pack({ ...g, n0: b0, nc: nb }));
        const gyb = gy.view([g.B, g.Co, HW]);
        const gyc = nb === g.B ? gyb : slice(gyb, 0, b0, b0 + nb);
        const part = matmul(gyc, colT, { transB: true }); // [nb, Co, K]
        const s1 = nb === 1 ? part.view([g.Co, K]) : sum(part, 0);
        map('o + x', { x: s1 }, { label: 'conv2d.backward', out: dw });
        for (const t of [colT, gyb, part, s1]) t.dispose();
        if (gyc !== gyb) gyc.dispose();
      }
    }
    const rowPath = (dx && !flipped) || (dw && imagesPerChunk < 1);
    for (const [n0, nc] of rowPath ? chunks(g) : []) {
      const gc = Tensor.empty([nc, g.Co], 'f32', 'conv2d.backward');
      chunkCopy(gy, gc, g, n0, nc, false);
      if (dx && !flipped) {
        const dcol = matmul(gc, w2); // [nc, K]
        launch('conv2d.col2im', COL2IM, [dcol, dx], grid(colImages(g, n0, nc) * g.Ci * g.H * g.W, 64), GeometryUniforms.pack({ ...g, n0, nc }));
        dcol.dispose();
      }
      if (dw && imagesPerChunk < 1) {
        const col = im2col(xs, g, n0, nc);
        const part = matmul(gc, col, { transA: true }); // [Co, K]
        map('o + x', { x: part }, { label: 'conv2d.backward', out: dw });
        part.dispose(); col.dispose();
      }
      gc.dispose();
    }
    w2.dispose();
    if (dw) { const v = dw.view(w.shape); dw.dispose(); dw = v; }
    const db = bias && need[2] ? sum(gy, [0, 2, 3]) : null;
    return bias ? [dx, dw, db] : [dx, dw];
  });
}

function colImages(g: Geometry, n0: number, nc: number): number {
  const HW = g.Ho * g.Wo;
  return Math.floor((n0 + nc - 1) / HW) - Math.floor(n0 / HW) + 1;
}

// ------------------------------------------------------------------------------------------ upsample
/** n lanes; H, W the smaller image's size. */
const ResampleUniforms = uniforms({ n: 'u32', H: 'u32', W: 'u32' });

const UPSAMPLE = /* wgsl */`
${ResampleUniforms.wgsl}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.n) { return; }
  let W2 = 2u * u.W;
  let x = i % W2; let y = (i / W2) % (2u * u.H); let bc = i / (W2 * 2u * u.H);
  Y[i] = X[(bc * u.H + y / 2u) * u.W + x / 2u];
}`;

const UPSAMPLE_BACKWARD = /* wgsl */`
${ResampleUniforms.wgsl}
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> DX: array<f32>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.n) { return; }
  let x = i % u.W; let y = (i / u.W) % u.H; let bc = i / (u.W * u.H);
  let W2 = 2u * u.W;
  let o = (bc * 2u * u.H + 2u * y) * W2 + 2u * x;
  DX[i] = G[o] + G[o + 1u] + G[o + W2] + G[o + W2 + 1u];
}`;

/** Nearest-neighbour ×2 upsampling of [B, C, H, W] (each pixel becomes a 2×2 block, as F.interpolate). */
export function upsampleNearest2x(x: Tensor): Tensor {
  check(x.ndim === 4 && x.dtype === 'f32', 'upsampleNearest2x', `expected f32 [B, C, H, W], got ${x.dtype} ${fmtShape(x.shape)}`);
  const [B, C, H, W] = x.shape;
  const y = Tensor.empty([B, C, 2 * H, 2 * W], 'f32', 'upsample');
  launch('upsample', UPSAMPLE, [x, y], grid(y.size, 64), ResampleUniforms.pack({ n: y.size, H, W }));
  return record('upsample', y, [x], [], (g) => {
    const dx = Tensor.empty(x.shape, 'f32', 'upsample.backward');
    launch('upsample.backward', UPSAMPLE_BACKWARD, [g, dx], grid(x.size, 64), ResampleUniforms.pack({ n: x.size, H, W }));
    return [dx];
  });
}


// ------------------------------------------------------------------------------------------ 2×2 average pooling
// Its backward spreads each gradient over the 2×2 block (¼ each): the upsampling kernel, scaled.
const AVGPOOL = /* wgsl */`
${ResampleUniforms.wgsl}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.n) { return; }
  let x = i % u.W; let y = (i / u.W) % u.H; let bc = i / (u.W * u.H);
  let W2 = 2u * u.W;
  let o = (bc * 2u * u.H + 2u * y) * W2 + 2u * x;
  Y[i] = 0.25 * (X[o] + X[o + 1u] + X[o + W2] + X[o + W2 + 1u]);
}`;

const AVGPOOL_BACKWARD = /* wgsl */`
${ResampleUniforms.wgsl}
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> DX: array<f32>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.n) { return; }
  let W2 = 2u * u.W;
  let x = i % W2; let y = (i / W2) % (2u * u.H); let bc = i / (W2 * 2u * u.H);
  DX[i] = 0.25 * G[(bc * u.H + y / 2u) * u.W + x / 2u];
}`;

/** 2×2 average pooling with stride 2 of [B, C, H, W] (H, W even), as F.avg_pool2d(x, 2). */
export function avgPool2x(x: Tensor): Tensor {
  check(x.ndim === 4 && x.dtype === 'f32' && x.shape[2] % 2 === 0 && x.shape[3] % 2 === 0, 'avgPool2x', `expected f32 [B, C, H, W] with even H and W, got ${x.dtype} ${fmtShape(x.shape)}`);
  const [B, C, H, W] = x.shape;
  const y = Tensor.empty([B, C, H / 2, W / 2], 'f32', 'avgPool2x');
  launch('avgPool2x', AVGPOOL, [x, y], grid(y.size, 64), ResampleUniforms.pack({ n: y.size, H: H / 2, W: W / 2 }));
  return record('avgPool2x', y, [x], [], (g) => {
    const dx = Tensor.empty(x.shape, 'f32', 'avgPool2x.backward');
    launch('avgPool2x.backward', AVGPOOL_BACKWARD, [g, dx], grid(x.size, 64), ResampleUniforms.pack({ n: x.size, H: H / 2, W: W / 2 }));
    return [dx];
  });
}

// ------------------------------------------------------------------------------------------ the family (kernels/registry.ts)
/** NCHW cross-correlation with zero padding [left, right, top, bottom]: the element at flat index of [B, Co, Ho, Wo]. */
function conv2dAt(x: Arr, w: Arr, bias: Arr | null, s: Conv2dProblem): (idx: number) => number {
  const [pl, pr, pt, pb] = s.pad;
  const Ho = Math.floor((s.H + pt + pb - s.KH) / s.stride) + 1, Wo = Math.floor((s.W + pl + pr - s.KW) / s.stride) + 1;
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

const conv = (B: number, Ci: number, H: number, W: number, Co: number, K: number, stride: number, pad: [number, number, number, number], bias = true): Conv2dProblem => ({ B, Ci, H, W, Co, KH: K, KW: K, stride, pad, bias });

export const conv2dFamily: Family<Conv2dProblem> = {
  name: 'conv2d',
  file: 'kernels/conv2d.ts',
  variants: described(CONV2D_VARIANTS, {
    direct: 'direct: each lane a run of 4 output pixels × 16 output channels, no im2col buffer; dX of stride 1 as a direct convolution with flipped weights',
    directg: 'direct with the weights loaded once per subgroup and broadcast',
    im2col: 'im2col chunks + the tuned matmul (bias in its epilogue); dX by col2im',
  }),
  choose: chooseConv2d,
  key: convKey,
  unsupported: (v) => conv2dUnsupported(v as Conv2dVariant),
  problems: () => [
    conv(2, 3, 9, 7, 5, 3, 1, [1, 1, 1, 1]),
    conv(1, 4, 8, 8, 6, 3, 2, [0, 1, 0, 1]), // the VAE's downsampling
    conv(2, 5, 6, 10, 3, 1, 1, [0, 0, 0, 0], false),
    conv(1, 2, 5, 5, 17, 3, 2, [1, 1, 1, 1]),
    conv(1, 1, 3, 17, 1, 3, 1, [2, 0, 1, 0]),
  ],
  describe: (p) => `${p.KH}×${p.KW} stride ${p.stride} pad [${p.pad}] [${p.B},${p.Ci},${p.H},${p.W}] → ${p.Co}${p.bias ? '' : ' (no bias)'}`,
  inputs: (p, seed) => [normal([p.B, p.Ci, p.H, p.W], seed), normal([p.Co, p.Ci, p.KH, p.KW], seed + 1, 0.5), ...(p.bias ? [normal([p.Co], seed + 2)] : [])],
  reference: (p, [x, w, b]) => [conv2dAt(x, w, b ?? null, p)],
  run: (p, [x, w, b], variant) => [conv2d(x, w, b ?? null, { stride: p.stride, padding: p.pad, variant: variant as Conv2dVariant })],
  tolerance: () => 2e-6,
};

interface ResampleProblem { op: 'upsample2x' | 'avgpool2x'; B: number; C: number; H: number; W: number }

export const resampleFamily: Family<ResampleProblem> = {
  name: 'resample',
  file: 'kernels/conv2d.ts',
  variants: { upsample2x: 'nearest ×2 upsampling (backward sums each 2×2 block)', avgpool2x: '2×2 average pooling, stride 2 (backward spreads ¼)' },
  unsupported: () => null,
  problems: (v) => (v === 'upsample2x' ? [{ op: 'upsample2x', B: 2, C: 3, H: 3, W: 5 }] : [{ op: 'avgpool2x', B: 2, C: 3, H: 6, W: 10 }]),
  describe: (p) => `${p.op} [${p.B},${p.C},${p.H},${p.W}]`,
  inputs: (p, seed) => [normal([p.B, p.C, p.H, p.W], seed)],
  reference: (p, [x]) => {
    const up = p.op === 'upsample2x';
    const Ho = up ? 2 * p.H : p.H / 2, Wo = up ? 2 * p.W : p.W / 2;
    return [Float64Array.from({ length: p.B * p.C * Ho * Wo }, (_, i) => {
      const ox = i % Wo, oy = Math.floor(i / Wo) % Ho, bc = Math.floor(i / (Wo * Ho));
      const at = (y: number, xx: number) => x[(bc * p.H + y) * p.W + xx];
      return up ? at(oy >> 1, ox >> 1) : 0.25 * (at(2 * oy, 2 * ox) + at(2 * oy, 2 * ox + 1) + at(2 * oy + 1, 2 * ox) + at(2 * oy + 1, 2 * ox + 1));
    })];
  },
  run: (p, [x]) => [p.op === 'upsample2x' ? upsampleNearest2x(x) : avgPool2x(x)],
  tolerance: () => 1e-6,
};
