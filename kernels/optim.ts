// Fused optimizer kernels, multi-tensor: one dispatch updates a list of parameter tensors (each bound as its
// own segment), so an optimizer step over a whole model is a handful of dispatches rather than one per
// tensor. AdamW (decoupled weight decay, bias correction, an optional global-norm clip factor read from the
// GPU) and the EMA of parameters; the global gradient norm is reduced on the GPU so clipping needs no readback.
import { gpu } from '../engine/device.js';
import { Tensor, check, fmtShape } from '../engine/tensor.js';
import { uniforms, grid, gridArgs, launch, linearIndex, type Uniforms, type UniformFields } from './util.js';
import { map } from './elementwise.js';
import { sum } from './reduce.js';
import { normal, randomUniform, type Family } from './reference.js';

/** Segments per dispatch at most: their starts and lengths fill eight vec4s of the uniform block. */
const MAX_SEGMENTS = 16;

/** How many segments of `perSegment` buffers one dispatch can bind beside `shared` ones on this adapter. */
function segmentsPerDispatch(perSegment: number, shared: number): number {
  return Math.max(1, Math.min(MAX_SEGMENTS, Math.floor((gpu().device.limits.maxStorageBuffersPerShaderStage - shared) / perSegment)));
}

/** A multi-tensor kernel's uniforms: its f32 scalars, then each segment's start and length in the flat index space. */
const segmentUniforms = <const S extends Record<string, 'f32'>>(scalars: S) =>
  uniforms({ ...scalars, start: `array<vec4u, ${MAX_SEGMENTS / 4}>`, n: `array<vec4u, ${MAX_SEGMENTS / 4}>` });

/**
 * One multi-tensor kernel: its uniform block, then segment k's buffers `names` suffixed with k, read as `f32`
 * or, when every tensor's size is a multiple of 4, as `vec4f` (a quarter of the load and store instructions,
 * which is what costs on CPU drivers; the same operations per value). Each segment starts at a multiple of 64
 * in the flat index space (in elements of that type), so a workgroup works on one segment; `body(k)` updates
 * element `j` of segment k.
 */
function multiTensorKernel(block: Uniforms<UniformFields>, shared: string, names: { name: string; access: 'read' | 'read_write' }[], segments: number, vec4: boolean, body: (k: number) => string): string {
  const first = 1 + (shared ? 1 : 0);
  const decls = Array.from({ length: segments }, (_, k) => names.map((b, i) => `@group(0) @binding(${first + k * names.length + i}) var<storage, ${b.access}> ${b.name}${k}: array<${vec4 ? 'vec4f' : 'f32'}>;`).join('\n')).join('\n');
  const at = (k: number) => `[${k >> 2}][${k & 3}]`;
  return /* wgsl */`
${block.wgsl}
${shared ? `@group(0) @binding(1) var<storage, read> ${shared}: array<f32>;` : ''}
${decls}
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  ${Array.from({ length: segments }, (_, k) => `if (i >= u.start${at(k)} && i - u.start${at(k)} < u.n${at(k)}) {
    let j = i - u.start${at(k)};
    ${body(k)}
  }`).join('\n  ')}
}`;
}

/**
 * Launches `kernel` over groups of segments, its uniforms packed by `pack` from the segments' starts and
 * lengths: the tensors whose size is a multiple of 4 (nearly all of a model's) as vec4s, the others as f32s.
 */
function launchSegments(label: string, segments: Tensor[][], shared: Tensor[], pack: (start: number[], n: number[]) => Uint32Array, kernel: (count: number, vec4: boolean) => string): void {
  const per = segmentsPerDispatch(segments[0]?.length ?? 1, shared.length);
  for (const vec4 of [true, false]) {
    const list = segments.filter((seg) => (seg[0].size % 4 === 0) === vec4);
    const width = vec4 ? 4 : 1;
    for (let s0 = 0; s0 < list.length; s0 += per) {
      const group = list.slice(s0, s0 + per);
      const starts: number[] = [], sizes: number[] = [];
      let end = 0;
      for (const seg of group) { const n = seg[0].size / width; starts.push(end); sizes.push(n); end += Math.ceil(n / 64) * 64; }
      launch(label, kernel(group.length, vec4), [...shared, ...group.flat()], grid(end, 64), pack(starts, sizes), `${group.length} tensors${vec4 ? ' vec4' : ''}`);
    }
  }
}

/** One parameter AdamW updates: the parameter, its gradient and its moments (updated in place). */
export interface AdamWTensors { p: Tensor; g: Tensor; m: Tensor; v: Tensor }

export interface AdamWStep { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number }

const AdamWUniforms = segmentUniforms({ lr: 'f32', beta1: 'f32', beta2: 'f32', eps: 'f32', wd: 'f32', bc1: 'f32', bc2sqrt: 'f32' });
const adamwKernel = (segments: number, vec4: boolean) => multiTensorKernel(
  AdamWUniforms, 'clip',
  [{ name: 'g', access: 'read' }, { name: 'p', access: 'read_write' }, { name: 'm', access: 'read_write' }, { name: 'v', access: 'read_write' }],
  segments, vec4,
  // Same operation order as torch.optim.AdamW (single-tensor path).
  (k) => `let gi = g${k}[j] * clip[0];
    let pi = p${k}[j] * (1.0 - u.lr * u.wd);
    let mi = m${k}[j] * u.beta1 + gi * (1.0 - u.beta1);
    let vi = v${k}[j] * u.beta2 + gi * gi * (1.0 - u.beta2);
    let denom = sqrt(vi) / u.bc2sqrt + u.eps;
    p${k}[j] = pi - (u.lr / u.bc1) * (mi / denom);
    m${k}[j] = mi;
    v${k}[j] = vi;`,
);

/** Fused AdamW updates of every (p, g·clip[0], m, v), all in place, in as few dispatches as the adapter's bindings allow. */
export function adamwUpdate(tensors: AdamWTensors[], clip: Tensor, s: AdamWStep): void {
  for (const { p, g, m, v } of tensors) check(g.size === p.size && m.size === p.size && v.size === p.size, 'adamw', `gradient ${fmtShape(g.shape)} or moments do not match parameter ${fmtShape(p.shape)}`);
  const bc1 = 1 - s.beta1 ** s.step, bc2 = 1 - s.beta2 ** s.step;
  launchSegments('adamw', tensors.map(({ p, g, m, v }) => [g, p, m, v]), [clip], (start, n) => AdamWUniforms.pack({ lr: s.lr, beta1: s.beta1, beta2: s.beta2, eps: s.eps, wd: s.weightDecay, bc1, bc2sqrt: Math.sqrt(bc2), start, n }), adamwKernel);
}

const EmaUniforms = segmentUniforms({ decay: 'f32', rest: 'f32' });
const emaKernel = (segments: number, vec4: boolean) => multiTensorKernel(
  EmaUniforms, '',
  [{ name: 'e', access: 'read_write' }, { name: 'x', access: 'read' }],
  segments, vec4,
  (k) => `e${k}[j] = e${k}[j] * u.decay + x${k}[j] * u.rest;`,
);

/** ema ← decay·ema + (1 − decay)·p for every pair, in place, in as few dispatches as the adapter's bindings allow. */
export function emaUpdate(emas: Tensor[], params: Tensor[], decay: number): void {
  check(emas.length === params.length && emas.every((e, i) => e.size === params[i].size), 'ema', 'the EMA tensors do not match the parameters');
  launchSegments('ema', emas.map((e, i) => [e, params[i]]), [], (start, n) => EmaUniforms.pack({ decay, rest: 1 - decay, start, n }), emaKernel);
}

/** √(Σ‖g‖²) over all gradients, as a one-element tensor (no readback). */
export function globalNorm(grads: Tensor[]): Tensor {
  let total: Tensor | null = null;
  for (const g of grads) {
    const sq = map('x * x', { x: g }, { label: 'gradNorm' });
    const s = sum(sq);
    sq.dispose();
    if (total) { map('o + x', { x: s }, { label: 'gradNorm', out: total }); s.dispose(); } else total = s;
  }
  return map('sqrt(o)', {}, { label: 'gradNorm', out: total ?? map('T(0.0)', {}, { out: Tensor.empty([], 'f32') }) });
}

/** The clip factor min(1, maxNorm / (norm + 1e-6)) as a one-element tensor, as torch's clip_grad_norm_. */
export function clipFactor(norm: Tensor, maxNorm: number): Tensor {
  return map('min(T(1.0), T(p) / (n + 1e-6))', { n: norm }, { label: 'clipFactor', p: maxNorm });
}

// ------------------------------------------------------------------------------------------ the family (kernels/registry.ts)
/** One optimizer call over several tensors of the given sizes (the multi-tensor kernels bind each as a segment). */
interface OptimProblem { op: string; sizes: number[]; step: number }
const ADAM = { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 };
const MAX_NORM = 1.5, EMA_DECAY = 0.9;

/** torch.optim.AdamW's update of (p, m, v) with gradient g·clip, in float64. */
function adamw64(p: ArrayLike<number>, g: ArrayLike<number>, m: ArrayLike<number>, v: ArrayLike<number>, step: number, clip: number): Float64Array[] {
  const out = [new Float64Array(p.length), new Float64Array(p.length), new Float64Array(p.length)];
  const bc1 = 1 - ADAM.beta1 ** step, bc2 = 1 - ADAM.beta2 ** step;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] * clip;
    const mi = ADAM.beta1 * m[i] + (1 - ADAM.beta1) * gi, vi = ADAM.beta2 * v[i] + (1 - ADAM.beta2) * gi * gi;
    out[0][i] = p[i] * (1 - ADAM.lr * ADAM.weightDecay) - (ADAM.lr / bc1) * mi / (Math.sqrt(vi) / Math.sqrt(bc2) + ADAM.eps);
    out[1][i] = mi; out[2][i] = vi;
  }
  return out;
}
function norm64(...xs: ArrayLike<number>[]): number {
  let s = 0;
  for (const x of xs) for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s);
}
/** Inputs per tensor: AdamW (p, g, m, v), EMA (ema, p), global norm (g). */
const optimArity = (op: string) => (op.startsWith('adamw') ? 4 : op === 'ema' ? 2 : 1);
const groupsOf = <T>(x: T[], n: number): T[][] => Array.from({ length: x.length / n }, (_, i) => x.slice(i * n, (i + 1) * n));

export const optimFamily: Family<OptimProblem> = {
  name: 'optim',
  file: 'kernels/optim.ts',
  variants: {
    adamw: 'fused multi-tensor AdamW update (decoupled weight decay, bias correction) in place',
    'adamw-clip': 'global gradient norm, clip factor and the AdamW update reading it on the GPU',
    ema: 'multi-tensor EMA update in place',
    'global-norm': 'the global gradient norm over several tensors',
  },
  unsupported: () => null,
  // Several tensors of awkward sizes in one call, and more tensors than one dispatch binds (two dispatches).
  problems: (v) => [{ op: v, sizes: [1031, 8, 64, 1, 130], step: 3 }, { op: v, sizes: Array.from({ length: 19 }, (_, i) => 3 + 5 * i), step: 1 }],
  describe: (p) => `${p.op} of ${p.sizes.length} tensors (${p.sizes.reduce((a, b) => a + b, 0)} values)${p.op.startsWith('adamw') ? ` at step ${p.step}` : ''}`,
  inputs: (p, seed) => p.sizes.flatMap((n, k) => {
    const s = seed + 4 * k;
    if (p.op === 'ema') return [normal([n], s, 1, false), normal([n], s + 1, 1, false)];
    if (p.op === 'global-norm') return [normal([n], s, 1, false)];
    return [normal([n], s, 1, false), normal([n], s + 1, 1, false), normal([n], s + 2, 0.1, false), { shape: [n], data: randomUniform(n, s + 3, 0.01, 0.5) }];
  }),
  reference: (p, x) => {
    const per = groupsOf(x, optimArity(p.op));
    if (p.op === 'ema') return per.map(([e, q]) => Float64Array.from(e, (ei, i) => EMA_DECAY * ei + (1 - EMA_DECAY) * q[i]));
    if (p.op === 'global-norm') return [Float64Array.of(norm64(...x))];
    const clip = p.op === 'adamw-clip' ? Math.min(1, MAX_NORM / (norm64(...per.map((t) => t[1])) + 1e-6)) : 1;
    return per.flatMap(([pp, g, m, v]) => adamw64(pp, g, m, v, p.step, clip));
  },
  run: (p, x) => {
    const per = groupsOf(x, optimArity(p.op));
    if (p.op === 'ema') { emaUpdate(per.map((t) => t[0]), per.map((t) => t[1]), EMA_DECAY); return per.map((t) => t[0]); }
    if (p.op === 'global-norm') return [globalNorm(x)];
    const clip = p.op === 'adamw-clip' ? clipFactor(globalNorm(per.map((t) => t[1])), MAX_NORM) : Tensor.from([1], [1]);
    adamwUpdate(per.map(([pp, g, m, v]) => ({ p: pp, g, m, v })), clip, { ...ADAM, step: p.step });
    clip.dispose();
    return per.flatMap(([pp, , m, v]) => [pp, m, v]);
  },
  tolerance: () => 2e-6,
};
