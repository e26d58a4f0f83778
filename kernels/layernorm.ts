// LayerNorm over the last axis fused with DiT's adaptive modulation, y = LN(x)·(1 + scale[b]) + shift[b]
// (no-affine LN, eps 1e-6), the gated residual x + gate[b]·f, and plain LayerNorm with an affine (w, b).
// Forward variants: `unrolled` (one lane per row, the row kept in registers so x is read once; D ≤ 256),
// `looped` (one lane per row, any D), `subgroup` (rows across a subgroup). Backward: dx per row, and the
// per-batch column sums that give dscale/dshift/dgate (or dw/db). The modulation is read in place from the
// adaLN output [B, k·D] (`ModulationChunk`), and its gradient is written in place into one tensor.
import { Tensor, AssembledGradient, record, check, fmtShape } from '../engine/tensor.js';
import { uniforms, grid, gridArgs, launch, linearIndex } from './util.js';
import { gpu } from '../engine/device.js';
import { tunedVariant } from './tuning.js';
import { zeros, addInPlace } from './elementwise.js';
import { described, normal, randomNormal, type Arr, type Family, type HostInput } from './reference.js';

type Mode = 'modulate' | 'affine' | 'none';

export type LayerNormVariant = 'unrolled' | 'looped' | 'subgroup';
export const LAYERNORM_VARIANTS: LayerNormVariant[] = ['unrolled', 'looped', 'subgroup'];

/** One normalisation problem: B batch elements of T rows of width D (modulation is per batch element). */
export interface LayerNormProblem { mode: Mode; B: number; T: number; D: number }

export const layerNormKey = (p: LayerNormProblem) => `${p.mode} ${p.B}x${p.T}x${p.D}`;

/** Rows are unrolled in registers up to this width; wider rows loop and re-read x. */
const UNROLL_MAX = 256;

function forwardKernel(D: number, mode: Mode, unroll: boolean): string {
  const D4 = D / 4;
  const mod = mode !== 'none';
  // (1 + scale) for modulation, w for the affine.
  const gain = (c: string) => (mode === 'modulate' ? `(1.0 + SC[sc + ${c}])` : `SC[sc + ${c}]`);
  const body = unroll
    ? `
  ${Array.from({ length: D4 }, (_, c) => `let x${c} = X[base + ${c}u];`).join('\n  ')}
  let s = ${Array.from({ length: D4 }, (_, c) => `x${c}`).join(' + ')};
  let mean = (s.x + s.y + s.z + s.w) / ${D}.0;
  ${Array.from({ length: D4 }, (_, c) => `let d${c} = x${c} - mean;`).join('\n  ')}
  let q = ${Array.from({ length: D4 }, (_, c) => `d${c} * d${c}`).join(' + ')};
  let rstd = inverseSqrt((q.x + q.y + q.z + q.w) / ${D}.0 + u.eps);
  ${Array.from({ length: D4 }, (_, c) => `Y[base + ${c}u] = d${c} * rstd${mod ? ` * ${gain(`${c}u`)} + SH[sh + ${c}u]` : ''};`).join('\n  ')}`
    : `
  // One pass for the statistics, shifted by the row's first value (no cancellation for offset rows).
  let x0 = X[base].x;
  var s = vec4f(0.0);
  var q = vec4f(0.0);
  for (var c = 0u; c < ${D4}u; c++) { let d = X[base + c] - x0; s += d; q += d * d; }
  let ms = (s.x + s.y + s.z + s.w) / ${D}.0;
  let mean = x0 + ms;
  let rstd = inverseSqrt(max((q.x + q.y + q.z + q.w) / ${D}.0 - ms * ms, 0.0) + u.eps);
  for (var c = 0u; c < ${D4}u; c++) { Y[base + c] = (X[base + c] - mean) * rstd${mod ? ` * ${gain('c')} + SH[sh + c]` : ''}; }`;

  return /* wgsl */`
${forwardBindings(mod)}
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let row = ${linearIndex(64)};
  if (row >= u.rows) { return; }
  let base = row * ${D4}u;
  ${mod ? 'let sc = (row / u.T) * u.scStride + u.scOffset; let sh = (row / u.T) * u.shStride + u.shOffset;' : ''}
  ${body}
  STATS[row] = vec2f(mean, rstd);
}`;
}

/**
 * The forward kernels' bindings: x, optional scale/shift, y and the saved (mean, rstd) per row. Scale and
 * shift of batch element b start at b·stride + offset (vec4s): a column block of adaLN's output, or the
 * affine's weight and bias (stride 0).
 */
const ForwardUniforms = uniforms({ rows: 'u32', T: 'u32', eps: 'f32', scStride: 'u32', scOffset: 'u32', shStride: 'u32', shOffset: 'u32' });
function forwardBindings(mod: boolean): string {
  return /* wgsl */`${ForwardUniforms.wgsl}
@group(0) @binding(1) var<storage, read> X: array<vec4f>;
${mod ? `@group(0) @binding(2) var<storage, read> SC: array<vec4f>;
@group(0) @binding(3) var<storage, read> SH: array<vec4f>;` : ''}
@group(0) @binding(${mod ? 4 : 2}) var<storage, read_write> Y: array<vec4f>;
@group(0) @binding(${mod ? 5 : 3}) var<storage, read_write> STATS: array<vec2f>;`;
}

/**
 * Rows across a subgroup: lanes run along the feature axis (lane l holds vec4s l, l+S, …, so each load
 * instruction reads S contiguous vec4s like a copy), the row stays in registers, mean and variance come
 * from subgroupAdd, and the modulation of batch element b is loaded once for the R rows a subgroup handles.
 */
function forwardSubgroupKernel(D: number, mode: Mode, S: number, R: number): string {
  const J = D / 4 / S;
  const mod = mode !== 'none';
  const js = Array.from({ length: J }, (_, j) => j);
  const gainOf = (j: number) => (mode === 'modulate' ? `(1.0 + sc${j})` : `sc${j}`);
  return /* wgsl */`
enable subgroups;
${forwardBindings(mod)}
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(subgroup_invocation_id) sgid: u32) {
  let sub = (wid.x + wid.y * nwg.x) * ${64 / S}u + lid.x / ${S}u;
  // No early exit: subgroupAdd needs uniform control flow, so spare subgroups compute a clamped row and
  // skip the stores.
  let r0 = min(sub * ${R}u, u.rows - 1u);
  let sc = (r0 / u.T) * u.scStride + u.scOffset;
  let sh = (r0 / u.T) * u.shStride + u.shOffset;
  ${mod ? js.map((j) => `let sc${j} = SC[sc + ${j * S}u + sgid]; let sh${j} = SH[sh + ${j * S}u + sgid];`).join('\n  ') : ''}
  for (var i = 0u; i < ${R}u; i++) {
    let live = sub * ${R}u + i < u.rows;
    let r = min(sub * ${R}u + i, u.rows - 1u);
    let base = r * ${D / 4}u + sgid;
    ${js.map((j) => `let x${j} = X[base + ${j * S}u];`).join(' ')}
    let s = ${js.map((j) => `x${j}`).join(' + ')};
    let mean = subgroupAdd(s.x + s.y + s.z + s.w) / ${D}.0;
    ${js.map((j) => `let d${j} = x${j} - mean;`).join(' ')}
    let q = ${js.map((j) => `d${j} * d${j}`).join(' + ')};
    let rstd = inverseSqrt(subgroupAdd(q.x + q.y + q.z + q.w) / ${D}.0 + u.eps);
    if (live) {
      ${js.map((j) => `Y[base + ${j * S}u] = d${j} * rstd${mod ? ` * ${gainOf(j)} + sh${j}` : ''};`).join('\n      ')}
      if (sgid == 0u) { STATS[r] = vec2f(mean, rstd); }
    }
  }
}`;
}

/** The gain (scale or weight) of batch element b at b·scStride + scOffset (vec4s). */
const BackwardUniforms = uniforms({ rows: 'u32', T: 'u32', eps: 'f32', scStride: 'u32', scOffset: 'u32' });

/** dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dx̂ = dy·gain. One lane per row. */
function backwardKernel(D: number, mode: Mode): string {
  const D4 = D / 4;
  const gainV = (c: string) => (mode === 'modulate' ? `(1.0 + SC[sc + ${c}])` : mode === 'affine' ? `SC[sc + ${c}]` : 'vec4f(1.0)');
  return /* wgsl */`
${BackwardUniforms.wgsl}
@group(0) @binding(1) var<storage, read> X: array<vec4f>;
@group(0) @binding(2) var<storage, read> G: array<vec4f>;
@group(0) @binding(3) var<storage, read> STATS: array<vec2f>;
${mode !== 'none' ? '@group(0) @binding(4) var<storage, read> SC: array<vec4f>;' : ''}
@group(0) @binding(${mode !== 'none' ? 5 : 4}) var<storage, read_write> DX: array<vec4f>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let row = ${linearIndex(64)};
  if (row >= u.rows) { return; }
  let base = row * ${D4}u;
  let sc = (row / u.T) * u.scStride + u.scOffset;
  let st = STATS[row];
  var a = vec4f(0.0);
  var b = vec4f(0.0);
  for (var c = 0u; c < ${D4}u; c++) {
    let xh = (X[base + c] - st.x) * st.y;
    let dxh = G[base + c] * ${gainV('c')};
    a += dxh;
    b += dxh * xh;
  }
  let ma = (a.x + a.y + a.z + a.w) / ${D}.0;
  let mb = (b.x + b.y + b.z + b.w) / ${D}.0;
  for (var c = 0u; c < ${D4}u; c++) {
    let xh = (X[base + c] - st.x) * st.y;
    let dxh = G[base + c] * ${gainV('c')};
    DX[base + c] = st.y * (dxh - ma - xh * mb);
  }
}`;
}

/**
 * Per-batch column sums over the T rows of each batch: S1[b,d] = Σ_t G, S2[b,d] = Σ_t G·Z, where Z is x̂
 * (recomputed from x and the row stats) or a given tensor F. One lane per column quad; each sum of batch
 * element b is written at b·stride + offset (vec4s), so it can land in a column block of a wider gradient.
 */
const ColSumsUniforms = uniforms({ B: 'u32', T: 'u32', D4: 'u32', s1Stride: 'u32', s1Offset: 'u32', s2Stride: 'u32', s2Offset: 'u32' });
function colSumsKernel(withStats: boolean, s1: 'none' | 'own' | 'in S2'): string {
  let b = 3;
  return /* wgsl */`
${ColSumsUniforms.wgsl}
@group(0) @binding(1) var<storage, read> G: array<vec4f>;
@group(0) @binding(2) var<storage, read> Z: array<vec4f>;
${withStats ? `@group(0) @binding(${b++}) var<storage, read> STATS: array<vec2f>;` : ''}
${s1 === 'own' ? `@group(0) @binding(${b++}) var<storage, read_write> S1: array<vec4f>;` : ''}
@group(0) @binding(${b}) var<storage, read_write> S2: array<vec4f>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.B * u.D4) { return; }
  let b = i / u.D4;
  let c = i % u.D4;
  var s1 = vec4f(0.0);
  var s2 = vec4f(0.0);
  for (var t = 0u; t < u.T; t++) {
    let row = b * u.T + t;
    let g = G[row * u.D4 + c];
    ${withStats ? 'let st = STATS[row]; let z = (Z[row * u.D4 + c] - st.x) * st.y;' : 'let z = Z[row * u.D4 + c];'}
    s1 += g;
    s2 += g * z;
  }
  ${s1 === 'none' ? '' : `${s1 === 'own' ? 'S1' : 'S2'}[b * u.s1Stride + u.s1Offset + c] = s1;`}
  S2[b * u.s2Stride + u.s2Offset + c] = s2;
}`;
}

/** The adapter's subgroup size when it is fixed and divides a workgroup of 64, else 0. */
function fixedSubgroup(): number {
  const g = gpu();
  const S = g.hasSubgroups && g.adapter.subgroupMinSize === g.adapter.subgroupMaxSize ? g.adapter.subgroupMinSize : 0;
  return S >= 4 && 64 % S === 0 ? S : 0;
}

/** Why `variant` cannot normalise rows of width `p.D` on this adapter (null when it can). */
export function layerNormUnsupported(p: LayerNormProblem, variant: LayerNormVariant): string | null {
  if (variant === 'unrolled' && p.D > UNROLL_MAX) return `rows are unrolled in registers up to D = ${UNROLL_MAX} (got ${p.D})`;
  if (variant !== 'subgroup') return null;
  const S = fixedSubgroup();
  if (!S) return 'rows across a subgroup need a fixed subgroup size of at least 4 that divides 64';
  // Rows that split into whole vec4s per lane, at most 36 vec4s per lane (registers).
  if (p.D % (4 * S) !== 0 || p.D / (4 * S) > 36) return `rows across a subgroup of ${S} need D a multiple of ${4 * S} and at most ${144 * S} (got ${p.D})`;
  return null;
}

/** The default: rows across a subgroup for adaLN modulation where possible, else one lane per row (unrolled when D allows). */
export function defaultLayerNormVariant(p: LayerNormProblem): LayerNormVariant {
  if (p.mode === 'modulate' && !layerNormUnsupported(p, 'subgroup')) return 'subgroup';
  return p.D <= UNROLL_MAX ? 'unrolled' : 'looped';
}

/** The variant the automatic choice takes: a tuned one for this adapter, else the default. */
export function chooseLayerNorm(p: LayerNormProblem): LayerNormVariant {
  return (tunedVariant('layernorm', layerNormKey(p), p) as LayerNormVariant | undefined) ?? defaultLayerNormVariant(p);
}

/** Where a [B, D] block of per-batch values lies in a tensor: element (b, d) at b·stride + offset + d (in vec4s). */
interface ColumnBlock { t: Tensor; stride4: number; offset4: number }

/** A whole [B, D] (or [D]: stride 0) tensor as a column block. */
const wholeBlock = (t: Tensor, D: number, perBatch = true): ColumnBlock => ({ t, stride4: perBatch ? D / 4 : 0, offset4: 0 });

/**
 * Chunk `index` of `count` equal pieces along the last axis of `source` [B, count·D]: DiT's adaLN output
 * split into shift, scale and gate, read in place by `adaLNModulate` and `gatedResidual` instead of copied
 * out (torch.chunk costs a dispatch per piece forward and another backward). The pieces of one source
 * share one gradient (`AssembledGradient`), into which each backward writes its columns in place.
 */
export class ModulationChunk {
  private constructor(readonly source: Tensor, readonly index: number, readonly count: number, private readonly gradient: AssembledGradient) {}

  /** The `count` chunks of `source` along its last axis (torch.chunk(source, count, -1), without copies). */
  static of(source: Tensor, count: number): ModulationChunk[] {
    const W = source.shape[source.ndim - 1];
    check(source.dtype === 'f32' && W % count === 0 && (W / count) % 4 === 0, 'ModulationChunk', `the last axis of ${source.dtype} ${fmtShape(source.shape)} does not split into ${count} f32 chunks of a multiple of 4`);
    const gradient = new AssembledGradient();
    return Array.from({ length: count }, (_, i) => new ModulationChunk(source, i, count, gradient));
  }

  /** Per-batch values as a chunk: a [B, D] tensor is its own single chunk. */
  static from(t: Tensor | ModulationChunk): ModulationChunk { return t instanceof ModulationChunk ? t : ModulationChunk.of(t, 1)[0]; }

  /** The width D of the chunk and the batch size B. */
  get D(): number { return this.source.shape[this.source.ndim - 1] / this.count; }
  get B(): number { return this.source.size / (this.D * this.count); }

  /** The chunk inside its source. */
  block(t = this.source): ColumnBlock { return { t, stride4: (this.count * this.D) / 4, offset4: (this.index * this.D) / 4 }; }

  /** Where this chunk's gradient goes, and the gradient tensor of the source when this is the backward that returns it. */
  gradBlock(): { block: ColumnBlock; returned: Tensor | null } {
    // Chunks no backward writes must read as zeros in the source's gradient.
    const { grad, fresh } = this.gradient.claim(() => this.count === 1 ? Tensor.empty(this.source.shape, 'f32', 'modulation.grad') : zeros([...this.source.shape]));
    return { block: this.block(grad), returned: fresh ? grad : null };
  }
}

/** The distinct tensors some chunks lie in: the op's autograd inputs. */
function sourcesOf(chunks: ModulationChunk[]): Tensor[] {
  return [...new Set(chunks.map((c) => c.source))];
}

/** Launches the forward of `variant` (x [rows, D] with optional gain/shift blocks, T rows per batch element). */
function forward(op: string, p: LayerNormProblem, variant: LayerNormVariant, x: Tensor, gain: ColumnBlock | null, shift: ColumnBlock | null, y: Tensor, stats: Tensor, eps: number): void {
  const rows = p.B * p.T;
  const params = ForwardUniforms.pack({ rows, T: p.T, eps, scStride: gain?.stride4 ?? 0, scOffset: gain?.offset4 ?? 0, shStride: shift?.stride4 ?? 0, shOffset: shift?.offset4 ?? 0 });
  const ins = gain ? [x, gain.t, shift!.t, y, stats] : [x, y, stats];
  if (variant === 'subgroup') {
    const S = fixedSubgroup();
    // R rows per subgroup, all in one batch element (T % R == 0).
    const R = p.T % 4 === 0 ? 4 : p.T % 2 === 0 ? 2 : 1;
    launch(op, forwardSubgroupKernel(p.D, p.mode, S, R), ins, grid(Math.ceil(rows / R) * S, 64), params, `${rows}x${p.D} subgroup`);
  } else {
    launch(op, forwardKernel(p.D, p.mode, variant === 'unrolled'), ins, grid(rows, 64), params, `${rows}x${p.D} ${variant}`);
  }
}

/** Column sums per batch of [B, T, D] into blocks: Σ_t g into `s1` (when given) and Σ_t g·z into `s2` (z = x̂ when `stats` is given). */
function colSums(g: Tensor, z: Tensor, B: number, T: number, D: number, s1: ColumnBlock | null, s2: ColumnBlock, stats?: Tensor): void {
  // Both sums may land in one tensor (two chunks of one gradient): it is bound once, being written.
  const s1Mode = !s1 ? 'none' : s1.t.binding.buffer === s2.t.binding.buffer ? 'in S2' : 'own';
  const ins = [g, z, ...(stats ? [stats] : []), ...(s1Mode === 'own' ? [s1!.t] : []), s2.t];
  launch('colSums', colSumsKernel(!!stats, s1Mode), ins, grid(B * D / 4, 64), ColSumsUniforms.pack({ B, T, D4: D / 4, s1Stride: s1?.stride4 ?? 0, s1Offset: s1?.offset4 ?? 0, s2Stride: s2.stride4, s2Offset: s2.offset4 }));
}

function shape3(op: string, x: Tensor): [number, number, number] {
  check(x.dtype === 'f32' && x.ndim >= 2, op, `expected f32 [..., D], got ${x.dtype} ${fmtShape(x.shape)}`);
  const D = x.shape[x.ndim - 1];
  check(D % 4 === 0, op, `the normalised width ${D} must be a multiple of 4`);
  const B = x.ndim === 3 ? x.shape[0] : 1;
  const T = x.size / D / B;
  return [B, T, D];
}

/**
 * DiT's `modulate(norm(x), shift, scale)`: y = LN(x)·(1 + scale[b]) + shift[b], x [B, T, D], shift/scale
 * [B, D] tensors or chunks of adaLN's output (`ModulationChunk`), LayerNorm without affine, eps 1e-6.
 */
export function adaLNModulate(x: Tensor, shift: Tensor | ModulationChunk, scale: Tensor | ModulationChunk, eps = 1e-6, opts: { variant?: LayerNormVariant } = {}): Tensor {
  const op = 'adaLNModulate';
  check(x.ndim === 3, op, `x must be [B, T, D], got ${fmtShape(x.shape)}`);
  const [B, T, D] = shape3(op, x);
  const sh = ModulationChunk.from(shift), sc = ModulationChunk.from(scale);
  for (const [n, c] of [['shift', sh], ['scale', sc]] as const) {
    check(c.B === B && c.D === D, op, `${n} must be [${B}, ${D}] for x ${fmtShape(x.shape)}, got ${c.count > 1 ? `chunk ${c.index} of ${c.count} of ` : ''}${fmtShape(c.source.shape)}`);
  }
  const y = Tensor.empty(x.shape, 'f32', op);
  const stats = Tensor.empty([B * T, 2], 'f32', `${op}.stats`);
  const p: LayerNormProblem = { mode: 'modulate', B, T, D };
  forward(op, p, opts.variant ?? chooseLayerNorm(p), x, sc.block(), sh.block(), y, stats, eps);
  const sources = sourcesOf([sh, sc]);
  const out = record(op, y, [x, ...sources], [x, sc.source, stats], (g, [xs, scs, sts], need) => {
    let dx: Tensor | null = null;
    if (need[0]) {
      dx = Tensor.empty(x.shape, 'f32', `${op}.backward`);
      const gain = sc.block(scs);
      launch(`${op}.backward`, backwardKernel(D, 'modulate'), [xs, g, sts, scs, dx], grid(B * T, 64), BackwardUniforms.pack({ rows: B * T, T, eps, scStride: gain.stride4, scOffset: gain.offset4 }));
    }
    const grads = sources.map(() => null as Tensor | null);
    if (need.slice(1).some(Boolean)) {
      const [dsh, dsc] = [sh, sc].map((c) => c.gradBlock());
      colSums(g, xs, B, T, D, dsh.block, dsc.block, sts);
      // One tensor passed as both shift and scale gets two gradients: their sum is its gradient.
      for (const [c, r] of [[sh, dsh.returned], [sc, dsc.returned]] as const) {
        const k = sources.indexOf(c.source);
        if (r) grads[k] = grads[k] ? addInPlace(grads[k]!, r) : r;
      }
    }
    return [dx, ...grads.map((t, i) => (need[i + 1] ? t : null))];
  });
  stats.dispose();
  return out;
}

/** LayerNorm over the last axis, optionally with an affine (weight, bias of length D). */
export function layerNorm(x: Tensor, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5, opts: { variant?: LayerNormVariant } = {}): Tensor {
  const op = 'layerNorm';
  const [, , D] = shape3(op, x);
  const rows = x.size / D;
  check(!!weight === !!bias, op, 'give both weight and bias, or neither');
  if (weight) check(weight.size === D && bias!.size === D, op, `weight/bias must have ${D} elements, got ${fmtShape(weight.shape)}, ${fmtShape(bias!.shape)}`);
  const mode: Mode = weight ? 'affine' : 'none';
  const y = Tensor.empty(x.shape, 'f32', op);
  const stats = Tensor.empty([rows, 2], 'f32', `${op}.stats`);
  const p: LayerNormProblem = { mode, B: 1, T: rows, D };
  forward(op, p, opts.variant ?? chooseLayerNorm(p), x, weight && wholeBlock(weight, D, false), bias && wholeBlock(bias, D, false), y, stats, eps);
  const inputs = weight ? [x, weight, bias!] : [x];
  const out = record(op, y, inputs, weight ? [x, stats, weight] : [x, stats], (g, [xs, sts, ws], need) => {
    let dx: Tensor | null = null;
    if (need[0]) {
      dx = Tensor.empty(x.shape, 'f32', `${op}.backward`);
      launch(`${op}.backward`, backwardKernel(D, mode), ws ? [xs, g, sts, ws, dx] : [xs, g, sts, dx], grid(rows, 64), BackwardUniforms.pack({ rows, T: rows, eps, scStride: 0, scOffset: 0 }));
    }
    if (!weight) return [dx];
    const db = Tensor.empty(bias!.shape, 'f32', `${op}.backward`), dw = Tensor.empty(weight.shape, 'f32', `${op}.backward`);
    colSums(g, xs, 1, rows, D, wholeBlock(db, D), wholeBlock(dw, D), sts);
    return [dx, need[1] ? dw : null, need[2] ? db : null];
  });
  stats.dispose();
  return out;
}

/** n4 vec4s of [B, T, D]; the gate of batch element b at b·gStride + gOffset (vec4s). */
const GatedUniforms = uniforms({ n4: 'u32', TD4: 'u32', D4: 'u32', gStride: 'u32', gOffset: 'u32' });

const GATED = /* wgsl */`
${GatedUniforms.wgsl}
@group(0) @binding(1) var<storage, read> X: array<vec4f>;
@group(0) @binding(2) var<storage, read> GATE: array<vec4f>;
@group(0) @binding(3) var<storage, read> F: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> Y: array<vec4f>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.n4) { return; }
  Y[i] = X[i] + GATE[(i / u.TD4) * u.gStride + u.gOffset + i % u.D4] * F[i];
}`;

const SCALE_ROWS = /* wgsl */`
${GatedUniforms.wgsl}
@group(0) @binding(1) var<storage, read> G: array<vec4f>;
@group(0) @binding(2) var<storage, read> GATE: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> Y: array<vec4f>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.n4) { return; }
  Y[i] = G[i] * GATE[(i / u.TD4) * u.gStride + u.gOffset + i % u.D4];
}`;

/** DiT's gated residual x + gate[b]·f, x and f [B, T, D], gate a [B, D] tensor or a chunk of adaLN's output. */
export function gatedResidual(x: Tensor, gate: Tensor | ModulationChunk, f: Tensor): Tensor {
  const op = 'gatedResidual';
  check(x.ndim === 3 && f.shape.every((d, i) => d === x.shape[i]) && f.ndim === 3, op, `x and f must be the same [B, T, D], got ${fmtShape(x.shape)} and ${fmtShape(f.shape)}`);
  const [B, T, D] = x.shape;
  check(D % 4 === 0, op, `D=${D} must be a multiple of 4`);
  const gc = ModulationChunk.from(gate);
  check(gc.B === B && gc.D === D, op, `gate must be [${B}, ${D}], got ${gc.count > 1 ? `chunk ${gc.index} of ${gc.count} of ` : ''}${fmtShape(gc.source.shape)}`);
  const y = Tensor.empty(x.shape, 'f32', op);
  const blk = gc.block();
  const p = GatedUniforms.pack({ n4: x.size / 4, TD4: T * D / 4, D4: D / 4, gStride: blk.stride4, gOffset: blk.offset4 });
  launch(op, GATED, [x, gc.source, f, y], grid(x.size / 4, 64), p);
  return record(op, y, [x, gc.source, f], [gc.source, f], (g, [gs, fs], need) => {
    let df: Tensor | null = null, dgate: Tensor | null = null;
    if (need[2]) {
      df = Tensor.empty(x.shape, 'f32', `${op}.backward`);
      launch(`${op}.backward`, SCALE_ROWS, [g, gs, df], grid(x.size / 4, 64), p);
    }
    if (need[1]) {
      const d = gc.gradBlock();
      colSums(g, fs, B, T, D, null, d.block);
      dgate = d.returned;
    }
    return [g, dgate, df];
  });
}

// ------------------------------------------------------------------------------------------ the family (kernels/registry.ts)
/** LayerNorm of each row of width D (biased variance, no affine). */
function layerNorm64(x: Arr, D: number, eps: number): Float64Array {
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

/** A normalisation check; `chunks`: shift and scale read in place as chunks 2 and 0 of one [B, chunks·D] tensor. */
type LayerNormCase = LayerNormProblem & { chunks?: number };
const ln = (mode: LayerNormProblem['mode'], B: number, T: number, D: number, chunks?: number): LayerNormCase => ({ mode, B, T, D, ...(chunks ? { chunks } : {}) });

/** Element i of a [B, T, D] tensor → its per-batch value in chunk `index` of a [B, chunks·D] tensor. */
const chunkIndex = (p: { T: number; D: number }, chunks: number, index: number) => (i: number) => Math.floor(i / (p.T * p.D)) * chunks * p.D + index * p.D + (i % p.D);

export const layerNormFamily: Family<LayerNormCase> = {
  name: 'layernorm',
  file: 'kernels/layernorm.ts',
  variants: described(LAYERNORM_VARIANTS, {
    unrolled: 'one lane per row, the row unrolled in registers (x read once)',
    looped: 'one lane per row, a loop over the row (statistics shifted by its first value)',
    subgroup: 'rows across a subgroup: lanes along the features, statistics by subgroupAdd',
  }),
  choose: chooseLayerNorm,
  key: layerNormKey,
  unsupported: (v, p) => layerNormUnsupported(p, v as LayerNormVariant),
  // Widths whose row loops LLVM does not fully unroll (16–24 vec4 steps compile for tens of seconds on lavapipe).
  problems: () => [ln('modulate', 3, 5, 4), ln('modulate', 2, 6, 128), ln('modulate', 2, 4, 64, 3), ln('modulate', 1, 6, 1152), ln('affine', 1, 7, 12), ln('affine', 1, 15, 32), ln('none', 1, 9, 32)],
  describe: (p) => `${p.mode === 'modulate' ? 'adaLN modulate' : p.mode === 'affine' ? 'LayerNorm (affine)' : 'LayerNorm'} [${p.mode === 'modulate' ? `${p.B},` : ''}${p.T},${p.D}]${p.chunks ? ` (shift, scale = chunks 2, 0 of ${p.chunks})` : ''}`,
  inputs: (p, seed) => {
    // Rows offset from zero: the statistics must not cancel.
    const x: HostInput = { shape: p.mode === 'modulate' ? [p.B, p.T, p.D] : [p.T, p.D], data: randomNormal(p.B * p.T * p.D, seed, 2).map((v) => v + 3), grad: true };
    if (p.mode === 'none') return [x];
    if (p.chunks) return [x, normal([p.B, p.chunks * p.D], seed + 1)];
    return [x, normal(p.mode === 'modulate' ? [p.B, p.D] : [p.D], seed + 1), normal(p.mode === 'modulate' ? [p.B, p.D] : [p.D], seed + 2)];
  },
  reference: (p, [x, a, b]) => {
    const n = layerNorm64(x, p.D, p.mode === 'modulate' ? 1e-6 : 1e-5);
    if (p.mode === 'none') return [n];
    if (p.chunks) {
      const sh = chunkIndex(p, p.chunks, 2), sc = chunkIndex(p, p.chunks, 0);
      return [n.map((v, i) => v * (1 + a[sc(i)]) + a[sh(i)])];
    }
    const sb = (i: number) => (p.mode === 'modulate' ? Math.floor(i / (p.T * p.D)) * p.D : 0) + (i % p.D);
    // modulate: inputs (x, shift, scale); affine: (x, weight, bias)
    return [n.map((v, i) => (p.mode === 'modulate' ? v * (1 + b[sb(i)]) + a[sb(i)] : v * a[sb(i)] + b[sb(i)]))];
  },
  run: (p, [x, a, b], variant) => {
    const opts = { variant: variant as LayerNormVariant };
    if (p.chunks) {
      const c = ModulationChunk.of(a, p.chunks);
      return [adaLNModulate(x, c[2], c[0], 1e-6, opts)];
    }
    if (p.mode === 'modulate') return [adaLNModulate(x, a, b, 1e-6, opts)];
    return [layerNorm(x, a ?? null, b ?? null, 1e-5, opts)];
  },
  tolerance: () => 3e-6,
};

/** `chunked`: DiT's half block x + gate·modulate(LN(f), shift, scale), all three chunks 1, 2, 0 of one [B, 3D] tensor (one shared gradient). */
interface GatedProblem { B: number; T: number; D: number; chunked?: boolean }

export const gatedFamily: Family<GatedProblem> = {
  name: 'gated-residual',
  file: 'kernels/layernorm.ts',
  variants: {
    vec4: 'x + gate[b]·f, vec4 lanes; backward: gate·dy and per-batch column sums',
    chunked: 'gate, shift and scale read in place from one adaLN output, their gradients written into one tensor',
  },
  unsupported: () => null,
  problems: (v) => (v === 'chunked' ? [{ B: 2, T: 3, D: 8, chunked: true }, { B: 3, T: 5, D: 36, chunked: true }] : [{ B: 2, T: 3, D: 8 }, { B: 3, T: 5, D: 36 }]),
  describe: (p) => `[${p.B},${p.T},${p.D}]${p.chunked ? ' x + gate·modulate(LN(f)), chunks of one [B, 3D]' : ''}`,
  inputs: (p, seed) => [normal([p.B, p.T, p.D], seed), normal([p.B, (p.chunked ? 3 : 1) * p.D], seed + 1), normal([p.B, p.T, p.D], seed + 2)],
  reference: (p, [x, g, f]) => {
    if (!p.chunked) return [Float64Array.from({ length: x.length }, (_, i) => x[i] + g[Math.floor(i / (p.T * p.D)) * p.D + (i % p.D)] * f[i])];
    const n = layerNorm64(f, p.D, 1e-6);
    const [gate, shift, scale] = [1, 2, 0].map((k) => chunkIndex(p, 3, k));
    return [Float64Array.from({ length: x.length }, (_, i) => x[i] + g[gate(i)] * (n[i] * (1 + g[scale(i)]) + g[shift(i)]))];
  },
  run: (p, [x, g, f]) => {
    if (!p.chunked) return [gatedResidual(x, g, f)];
    const c = ModulationChunk.of(g, 3);
    return [gatedResidual(x, c[1], adaLNModulate(f, c[2], c[0]))];
  },
  tolerance: (p) => (p.chunked ? 3e-6 : 1e-6),
};
