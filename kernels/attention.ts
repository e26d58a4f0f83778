// Scaled dot-product attention softmax(Q·Kᵀ·scale)·V.
//
// `flashAttention`: one pass with an online softmax over key blocks, never writing the Tq×Tk matrix; it saves
// the log-sum-exp per query for a backward that recomputes the probabilities (one kernel for dQ with lanes
// over queries, one for dK/dV with lanes over keys, so no atomics). Each lane owns one query row in
// registers; key/value rows are shared by the subgroup: lane l loads row j0+l and the others read it by
// subgroupBroadcast (loads are what CPU drivers pay for; without subgroups every lane loads each row).
// Q, K, V and O are addressed by (offset, batch, head, token) strides, so DiT's packed qkv [B, T, 3, H, dh]
// is read in place and O is written token-major [B, T, H·dh], ready for the output projection.
//
// `attentionUnfused`: matmul, softmax, matmul through the ordinary ops (and their autograd); faster for short
// sequences on some adapters and for large head dims. `attention` and `selfAttention` pick one.
//
// Variants: `flash{R}[g]` (R = 1 or 2 query rows per lane; g: key/value rows shared by subgroupBroadcast) and
// `unfused`. The choice is a tuned one for the adapter and shape, else `defaultAttentionVariant`.
import { gpu } from '../engine/device.js';
import { Tensor, record, check, fmtShape, type DType } from '../engine/tensor.js';
import { tunedVariant } from './tuning.js';
import { uniforms, launch } from './util.js';
import { matmul } from './matmul.js';
import { softmax } from './reduce.js';
import { permute, reshape, slice } from './shape.js';
import { described, normal, f16Values, type Arr, type Family } from './reference.js';

/** Where one operand lives in its buffer: element (b, h, t, e) is at off + b·sb + h·sh + t·st + e. */
export interface Strided { t: Tensor; off: number; sb: number; sh: number; st: number }

interface Dims { B: number; H: number; Tq: number; Tk: number; dh: number; scale: number }

const WG = 64;

/** An operand's place (element (b, h, t, e) at off + b·sb + h·sh + t·st + e) and the kernels' blocks: the dims and each operand's place. */
const Place = uniforms({ off: 'u32', sb: 'u32', sh: 'u32', st: 'u32' }, 'S4');
const block = <const N extends string>(...names: N[]) => uniforms({ B: 'u32', H: 'u32', Tq: 'u32', Tk: 'u32', scale: 'f32', ...Object.fromEntries(names.map((n) => [n, Place])) as Record<N, typeof Place> });
const FORWARD = block('q', 'k', 'v', 'o'), DELTA = block('o', 'g'), DQ = block('q', 'k', 'v', 'g', 'dq'), DKV = block('q', 'k', 'v', 'g', 'dk', 'dv');

/** WGSL lines that load row `row` of operand `name` (dh/4 vec4s) into `${dst}${c}`. */
function loadRow(name: string, dst: string, row: string, bh: string, dh: number, f16 = false): string {
  const lines = [`let ${dst}base = (u.${name}.off + ${bh}.x * u.${name}.sb + ${bh}.y * u.${name}.sh + ${row} * u.${name}.st) >> 2u;`];
  for (let c = 0; c < dh / 4; c++) lines.push(`let ${dst}${c} = ${f16 ? `vec4f(${name.toUpperCase()}[${dst}base + ${c}u])` : `${name.toUpperCase()}[${dst}base + ${c}u]`};`);
  return lines.join('\n    ');
}

/** Reads component `e` of row `jj` of a block loaded with loadRow into `${src}c` (shared by broadcast). */
function shared(src: string, jj: number, dh: number, sg: number): string[] {
  // One broadcast per vec4, returned as names `${src}b${jj}_${c}`.
  const out: string[] = [];
  for (let c = 0; c < dh / 4; c++) out.push(sg ? `let ${src}b${jj}_${c} = subgroupBroadcast(${src}${c}, ${jj}u);` : '');
  return out;
}

/**
 * The forward kernel. Each lane owns R query rows (R = 2 halves the key/value loads and broadcasts per FMA);
 * the workgroup covers WG·R queries of one (batch, head).
 */
function fwdKernel(dh: number, sg: number, KB: number, f16 = false, R = 1): string {
  const D4 = dh / 4;
  const vec = (n: string) => Array.from({ length: D4 }, (_, c) => `${n}${c}`);
  const rs = Array.from({ length: R }, (_, r) => r);
  const body: string[] = [];
  const kRow = (jj: number) => (sg ? `klb${jj}_` : `kr${jj}_`);
  const vRow = (jj: number) => (sg ? `vlb${jj}_` : `vr${jj}_`);
  if (sg) {
    body.push(`let jl = min(j0 + sgid, u.Tk - 1u);`);
    body.push(loadRow('k', 'kl', 'jl', 'bh', dh, f16));
  }
  for (let jj = 0; jj < KB; jj++) {
    if (sg) body.push(...shared('kl', jj, dh, sg));
    else {
      body.push(`let jr${jj} = min(j0 + ${jj}u, u.Tk - 1u);`);
      body.push(loadRow('k', `kr${jj}_`, `jr${jj}`, 'bh', dh, f16));
    }
    for (const r of rs) body.push(`var s${r}_${jj} = ${vec(`q${r}_`).map((q, c) => `dot(${q}, ${kRow(jj)}${c})`).join(' + ')};`);
  }
  for (let jj = 0; jj < KB; jj++) body.push(`if (j0 + ${jj}u >= u.Tk) { ${rs.map((r) => `s${r}_${jj} = -1e30;`).join(' ')} }`);
  for (const r of rs) {
    body.push(`let mb${r} = max(${Array.from({ length: KB }, (_, jj) => `s${r}_${jj}`).reduce((a, b) => `max(${a}, ${b})`)}, m${r});`);
    body.push(`let corr${r} = exp(m${r} - mb${r});`);
    body.push(`m${r} = mb${r};`);
    for (let jj = 0; jj < KB; jj++) body.push(`let p${r}_${jj} = exp(s${r}_${jj} - m${r});`);
    body.push(`l${r} = l${r} * corr${r} + ${Array.from({ length: KB }, (_, jj) => `p${r}_${jj}`).join(' + ')};`);
    for (let c = 0; c < D4; c++) body.push(`o${r}_${c} = o${r}_${c} * corr${r};`);
  }
  if (sg) body.push(loadRow('v', 'vl', 'jl', 'bh', dh, f16));
  for (let jj = 0; jj < KB; jj++) {
    if (sg) body.push(...shared('vl', jj, dh, sg));
    else body.push(loadRow('v', `vr${jj}_`, `jr${jj}`, 'bh', dh, f16));
    for (const r of rs) for (let c = 0; c < D4; c++) body.push(`o${r}_${c} = fma(vec4f(p${r}_${jj}), ${vRow(jj)}${c}, o${r}_${c});`);
  }
  return `
${sg ? 'enable subgroups;' : ''}
${f16 ? 'enable f16;' : ''}
${FORWARD.wgsl}
@group(0) @binding(1) var<storage, read> Q: array<${f16 ? 'vec4<f16>' : 'vec4f'}>;
@group(0) @binding(2) var<storage, read> K: array<${f16 ? 'vec4<f16>' : 'vec4f'}>;
@group(0) @binding(3) var<storage, read> V: array<${f16 ? 'vec4<f16>' : 'vec4f'}>;
@group(0) @binding(4) var<storage, read_write> O: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> LSE: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u${sg ? ', @builtin(subgroup_invocation_id) sgid: u32' : ''}) {
  let bh = vec2u(wid.y / u.H, wid.y % u.H);
  ${rs.map((r) => `let i${r} = wid.x * ${WG * R}u + ${r * WG}u + lid.x;
  let ic${r} = min(i${r}, u.Tq - 1u);
  ${loadRow('q', `qr${r}_`, `ic${r}`, 'bh', dh, f16)}
  ${vec(`q${r}_`).map((q, c) => `let ${q} = qr${r}_${c} * u.scale;`).join('\n  ')}
  ${vec(`o${r}_`).map((o) => `var ${o} = vec4f(0.0);`).join(' ')}
  var m${r} = -1e30;
  var l${r} = 0.0;`).join('\n  ')}
  for (var j0 = 0u; j0 < u.Tk; j0 += ${KB}u) {
    ${body.join('\n    ')}
  }
  ${rs.map((r) => `if (i${r} < u.Tq) {
    let inv = 1.0 / l${r};
    let ob = (u.o.off + bh.x * u.o.sb + bh.y * u.o.sh + i${r} * u.o.st) >> 2u;
    ${vec(`o${r}_`).map((o, c) => `O[ob + ${c}u] = ${o} * inv;`).join('\n    ')}
    LSE[(bh.x * u.H + bh.y) * u.Tq + i${r}] = m${r} + log(l${r});
  }`).join('\n  ')}
}`;
}

/** D_i = Σ_e dO_ie·O_ie, per query ([B, H, Tq]). */
function deltaKernel(dh: number): string {
  const D4 = dh / 4;
  return `
${DELTA.wgsl}
@group(0) @binding(1) var<storage, read> O: array<vec4f>;
@group(0) @binding(2) var<storage, read> G: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> Dl: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let bh = vec2u(wid.y / u.H, wid.y % u.H);
  let i = wid.x * ${WG}u + lid.x;
  if (i >= u.Tq) { return; }
  ${loadRow('o', 'or', 'i', 'bh', dh)}
  ${loadRow('g', 'gr', 'i', 'bh', dh)}
  Dl[(bh.x * u.H + bh.y) * u.Tq + i] = ${Array.from({ length: D4 }, (_, c) => `dot(or${c}, gr${c})`).join(' + ')};
}`;
}

/** dQ: lanes over queries, loop over key blocks. */
function dqKernel(dh: number, sg: number, KB: number): string {
  const D4 = dh / 4;
  const vec = (n: string) => Array.from({ length: D4 }, (_, c) => `${n}${c}`);
  const body: string[] = [];
  const rowK = (jj: number) => (sg ? `klb${jj}_` : `kr${jj}_`);
  const rowV = (jj: number) => (sg ? `vlb${jj}_` : `vr${jj}_`);
  if (sg) {
    body.push(`let jl = min(j0 + sgid, u.Tk - 1u);`);
    body.push(loadRow('k', 'kl', 'jl', 'bh', dh));
    body.push(loadRow('v', 'vl', 'jl', 'bh', dh));
  }
  for (let jj = 0; jj < KB; jj++) {
    if (sg) { body.push(...shared('kl', jj, dh, sg)); body.push(...shared('vl', jj, dh, sg)); } else {
      body.push(`let jr${jj} = min(j0 + ${jj}u, u.Tk - 1u);`);
      body.push(loadRow('k', `kr${jj}_`, `jr${jj}`, 'bh', dh));
      body.push(loadRow('v', `vr${jj}_`, `jr${jj}`, 'bh', dh));
    }
    body.push(`let s${jj} = ${vec('q').map((q, c) => `dot(${q}, ${rowK(jj)}${c})`).join(' + ')};`);
    body.push(`let p${jj} = select(0.0, exp(s${jj} - lse), j0 + ${jj}u < u.Tk);`);
    body.push(`let dp${jj} = ${vec('g').map((g, c) => `dot(${g}, ${rowV(jj)}${c})`).join(' + ')};`);
    body.push(`let ds${jj} = p${jj} * (dp${jj} - dl);`);
    for (let c = 0; c < D4; c++) body.push(`dq${c} = fma(vec4f(ds${jj}), ${rowK(jj)}${c}, dq${c});`);
  }
  return `
${sg ? 'enable subgroups;' : ''}
${DQ.wgsl}
@group(0) @binding(1) var<storage, read> Q: array<vec4f>;
@group(0) @binding(2) var<storage, read> K: array<vec4f>;
@group(0) @binding(3) var<storage, read> V: array<vec4f>;
@group(0) @binding(4) var<storage, read> G: array<vec4f>;
@group(0) @binding(5) var<storage, read> LSE: array<f32>;
@group(0) @binding(6) var<storage, read> Dl: array<f32>;
@group(0) @binding(7) var<storage, read_write> DQ: array<vec4f>;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u${sg ? ', @builtin(subgroup_invocation_id) sgid: u32' : ''}) {
  let bh = vec2u(wid.y / u.H, wid.y % u.H);
  let i = wid.x * ${WG}u + lid.x;
  let ic = min(i, u.Tq - 1u);
  ${loadRow('q', 'qr', 'ic', 'bh', dh)}
  ${vec('q').map((q, c) => `let ${q} = qr${c} * u.scale;`).join('\n  ')}
  ${loadRow('g', 'g', 'ic', 'bh', dh)}
  let lse = LSE[(bh.x * u.H + bh.y) * u.Tq + ic];
  let dl = Dl[(bh.x * u.H + bh.y) * u.Tq + ic];
  ${vec('dq').map((o) => `var ${o} = vec4f(0.0);`).join(' ')}
  for (var j0 = 0u; j0 < u.Tk; j0 += ${KB}u) {
    ${body.join('\n    ')}
  }
  if (i < u.Tq) {
    let ob = (u.dq.off + bh.x * u.dq.sb + bh.y * u.dq.sh + i * u.dq.st) >> 2u;
    ${vec('dq').map((o, c) => `DQ[ob + ${c}u] = ${o} * u.scale;`).join('\n    ')}
  }
}`;
}

/** dK, dV: lanes over keys, loop over query blocks. */
function dkvKernel(dh: number, sg: number, KB: number, packed: boolean): string {
  const D4 = dh / 4;
  const vec = (n: string) => Array.from({ length: D4 }, (_, c) => `${n}${c}`);
  const body: string[] = [];
  const rowQ = (ii: number) => (sg ? `qlb${ii}_` : `qr${ii}_`);
  const rowG = (ii: number) => (sg ? `glb${ii}_` : `gr${ii}_`);
  if (sg) {
    body.push(`let il = min(i0 + sgid, u.Tq - 1u);`);
    body.push(loadRow('q', 'ql', 'il', 'bh', dh));
    body.push(loadRow('g', 'gl', 'il', 'bh', dh));
    body.push(`let lsel = LSE[(bh.x * u.H + bh.y) * u.Tq + il];`);
    body.push(`let dll = Dl[(bh.x * u.H + bh.y) * u.Tq + il];`);
  }
  for (let ii = 0; ii < KB; ii++) {
    if (sg) {
      body.push(...shared('ql', ii, dh, sg));
      body.push(...shared('gl', ii, dh, sg));
      body.push(`let lse${ii} = subgroupBroadcast(lsel, ${ii}u);`);
      body.push(`let dl${ii} = subgroupBroadcast(dll, ${ii}u);`);
    } else {
      body.push(`let ir${ii} = min(i0 + ${ii}u, u.Tq - 1u);`);
      body.push(loadRow('q', `qr${ii}_`, `ir${ii}`, 'bh', dh));
      body.push(loadRow('g', `gr${ii}_`, `ir${ii}`, 'bh', dh));
      body.push(`let lse${ii} = LSE[(bh.x * u.H + bh.y) * u.Tq + ir${ii}];`);
      body.push(`let dl${ii} = Dl[(bh.x * u.H + bh.y) * u.Tq + ir${ii}];`);
    }
    body.push(`let s${ii} = (${vec('k').map((k, c) => `dot(${k}, ${rowQ(ii)}${c})`).join(' + ')}) * u.scale;`);
    body.push(`let p${ii} = select(0.0, exp(s${ii} - lse${ii}), i0 + ${ii}u < u.Tq);`);
    for (let c = 0; c < D4; c++) body.push(`dv${c} = fma(vec4f(p${ii}), ${rowG(ii)}${c}, dv${c});`);
    body.push(`let dp${ii} = ${vec('v').map((v, c) => `dot(${v}, ${rowG(ii)}${c})`).join(' + ')};`);
    body.push(`let ds${ii} = p${ii} * (dp${ii} - dl${ii});`);
    for (let c = 0; c < D4; c++) body.push(`dk${c} = fma(vec4f(ds${ii}), ${rowQ(ii)}${c}, dk${c});`);
  }
  return `
${sg ? 'enable subgroups;' : ''}
${DKV.wgsl}
@group(0) @binding(1) var<storage, read> Q: array<vec4f>;
@group(0) @binding(2) var<storage, read> K: array<vec4f>;
@group(0) @binding(3) var<storage, read> V: array<vec4f>;
@group(0) @binding(4) var<storage, read> G: array<vec4f>;
@group(0) @binding(5) var<storage, read> LSE: array<f32>;
@group(0) @binding(6) var<storage, read> Dl: array<f32>;
@group(0) @binding(7) var<storage, read_write> DK: array<vec4f>;
${packed ? '' : '@group(0) @binding(8) var<storage, read_write> DV: array<vec4f>;'}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u${sg ? ', @builtin(subgroup_invocation_id) sgid: u32' : ''}) {
  let bh = vec2u(wid.y / u.H, wid.y % u.H);
  let j = wid.x * ${WG}u + lid.x;
  let jc = min(j, u.Tk - 1u);
  ${loadRow('k', 'k', 'jc', 'bh', dh)}
  ${loadRow('v', 'v', 'jc', 'bh', dh)}
  ${vec('dk').map((o) => `var ${o} = vec4f(0.0);`).join(' ')}
  ${vec('dv').map((o) => `var ${o} = vec4f(0.0);`).join(' ')}
  for (var i0 = 0u; i0 < u.Tq; i0 += ${KB}u) {
    ${body.join('\n    ')}
  }
  if (j < u.Tk) {
    let kb = (u.dk.off + bh.x * u.dk.sb + bh.y * u.dk.sh + j * u.dk.st) >> 2u;
    let vb = (u.dv.off + bh.x * u.dv.sb + bh.y * u.dv.sh + j * u.dv.st) >> 2u;
    ${vec('dk').map((o, c) => `DK[kb + ${c}u] = ${o} * u.scale;`).join('\n    ')}
    ${vec('dv').map((o, c) => `${packed ? 'DK' : 'DV'}[vb + ${c}u] = ${o};`).join('\n    ')}
  }
}`;
}

/** The adapter's subgroup size when subgroup-shared rows are possible (at least 4 lanes), else 0. */
function subgroupLanes(): number {
  const g = gpu();
  return g.hasSubgroups && g.adapter.subgroupMinSize >= 4 ? g.adapter.subgroupMinSize : 0;
}

/** A fused kernel configuration: query rows per lane and whether key/value rows are shared by broadcast. */
interface FlashConfig { R: 1 | 2; shared: boolean }

function blockSize(c: FlashConfig): { sg: number; KB: number } {
  const sg = c.shared ? subgroupLanes() : 0;
  // Blocks of one subgroup (at most 16 keys, so scores stay in registers); 4 keys per step without subgroups.
  return sg ? { sg, KB: Math.min(sg, 16) } : { sg: 0, KB: 4 };
}

export type AttentionVariant = 'flash1' | 'flash2' | 'flash1g' | 'flash2g' | 'unfused';
export const ATTENTION_VARIANTS: AttentionVariant[] = ['flash1', 'flash2', 'flash1g', 'flash2g', 'unfused'];

/** One attention problem: shapes, whether q, k, v come packed in one qkv tensor (self-attention), dtype. */
export interface AttentionProblem { B: number; H: number; Tq: number; Tk: number; dh: number; packed: boolean; dtype: DType }

export const attentionKey = (p: AttentionProblem) => `${p.B}x${p.H}x${p.Tq}x${p.Tk}x${p.dh}${p.packed ? 'p' : ''}${p.dtype}`;

function flashConfig(v: AttentionVariant): FlashConfig {
  const m = /^flash([12])(g?)$/.exec(v);
  if (!m) throw new Error(`attention: '${v}' is not a fused variant`);
  return { R: m[1] === '2' ? 2 : 1, shared: m[2] === 'g' };
}

/** Why `variant` cannot run problem `p` on this adapter (null when it can). */
export function attentionUnsupported(p: AttentionProblem, variant: AttentionVariant): string | null {
  if (p.dtype === 'f16' && !gpu().hasF16) return 'f16 operands need shader-f16, which this adapter lacks';
  if (variant === 'unfused') return p.dtype === 'f16' ? 'f16 operands: only the fused kernels read them' : null;
  if (p.dh % 4 !== 0 || p.dh > 256) return `the fused kernels need a head dim that is a multiple of 4 and at most 256 (got ${p.dh})`;
  if (flashConfig(variant).shared && !subgroupLanes()) return `shared key/value rows need subgroups of at least 4 lanes (this adapter: ${gpu().hasSubgroups ? gpu().adapter.subgroupMinSize : 'no subgroups'})`;
  return null;
}

/**
 * The fused variant for a shape: two query rows per lane when there are enough queries to keep the lanes
 * busy and the head is not wide; shared rows when the adapter has subgroups.
 */
function defaultFlashVariant(p: AttentionProblem): AttentionVariant {
  return `flash${p.Tq >= 2 * WG && p.dh <= 72 ? 2 : 1}${subgroupLanes() ? 'g' : ''}` as AttentionVariant;
}

/**
 * The adapter kind's default: fused on CPU drivers (measured ~2× faster on llvmpipe), unfused on GPUs while
 * the scores fit a binding (measured faster on an H100), fused whenever they would not fit or the operands
 * are f16; unfused for head dims the fused kernels do not take.
 */
export function defaultAttentionVariant(p: AttentionProblem): AttentionVariant {
  const g = gpu();
  if (p.dtype === 'f16') return defaultFlashVariant(p);
  if (p.dh % 4 !== 0 || p.dh > 128) return 'unfused';
  const scoresFit = 4 * p.B * p.H * p.Tq * p.Tk <= g.maxBindingBytes / 2;
  return !scoresFit || g.adapter.isSoftware ? defaultFlashVariant(p) : 'unfused';
}

/** The variant the automatic choice takes: a tuned one for this adapter, else the default. */
export function chooseAttention(p: AttentionProblem): AttentionVariant {
  return (tunedVariant('attention', attentionKey(p), p) as AttentionVariant | undefined) ?? defaultAttentionVariant(p);
}

/** The fused configuration: the one named, else the chosen one when it is fused, else the fused default. */
function chosenFlash(p: AttentionProblem, variant?: AttentionVariant): FlashConfig {
  const v = variant ?? chooseAttention(p);
  return flashConfig(v === 'unfused' ? defaultFlashVariant(p) : v);
}

function checkStrided(op: string, s: Strided, d: Dims, T: number, allowF16 = false): void {
  check(s.t.dtype === 'f32' || (allowF16 && s.t.dtype === 'f16'), op, `expected f32${allowF16 ? ' or f16' : ''}, got ${s.t.dtype}`);
  for (const v of [s.off, s.sb, s.sh, s.st]) check(v % 4 === 0, op, 'operand offsets and strides must be multiples of 4 elements');
  const last = s.off + (d.B - 1) * s.sb + (d.H - 1) * s.sh + (T - 1) * s.st + d.dh;
  check(last <= s.t.size, op, `operand ${fmtShape(s.t.shape)} is too small for B=${d.B} H=${d.H} T=${T} dh=${d.dh}`);
}

/**
 * Fused attention on strided operands; returns O written at `out`'s strides and the log-sum-exp [B,H,Tq].
 * No autograd (see `flashAttention`).
 */
export function flashForward(q: Strided, k: Strided, v: Strided, out: Strided, d: Dims, c: FlashConfig): Tensor {
  const op = 'flashAttention';
  check(d.dh % 4 === 0 && d.dh <= 256, op, `head dim ${d.dh} must be a multiple of 4 and at most 256`);
  const f16 = q.t.dtype === 'f16';
  check(k.t.dtype === q.t.dtype && v.t.dtype === q.t.dtype, op, `q, k, v must share a dtype (${q.t.dtype}, ${k.t.dtype}, ${v.t.dtype})`);
  if (f16) check(gpu().hasF16, op, 'f16 operands need the shader-f16 feature, which this adapter lacks');
  checkStrided(op, q, d, d.Tq, true); checkStrided(op, k, d, d.Tk, true); checkStrided(op, v, d, d.Tk, true); checkStrided(op, out, d, d.Tq);
  const { sg, KB } = blockSize(c);
  const lse = Tensor.empty([d.B, d.H, d.Tq], 'f32', 'attention.lse');
  // f16 operands are addressed in elements as well: offsets/strides are in elements, loads are vec4<f16>.
  launch(op, fwdKernel(d.dh, sg, KB, f16, c.R), [q.t, k.t, v.t, out.t, lse], [Math.ceil(d.Tq / (WG * c.R)), d.B * d.H], FORWARD.pack({ ...d, q, k, v, o: out }), `B${d.B} H${d.H} ${d.Tq}x${d.Tk} d${d.dh} flash${c.R}${sg ? 'g' : ''}`);
  return lse;
}

/** Gradients of the fused attention into dq/dk/dv (strided, may share one buffer). No autograd. */
export function flashBackward(q: Strided, k: Strided, v: Strided, o: Strided, g: Strided, lse: Tensor, dq: Strided, dk: Strided, dv: Strided, d: Dims, c: FlashConfig): void {
  const { sg, KB } = blockSize(c);
  const delta = Tensor.empty([d.B, d.H, d.Tq], 'f32', 'attention.delta');
  launch('flashAttention.backward', deltaKernel(d.dh), [o.t, g.t, delta], [Math.ceil(d.Tq / WG), d.B * d.H], DELTA.pack({ ...d, o, g }));
  launch('flashAttention.backward', dqKernel(d.dh, sg, KB), [q.t, k.t, v.t, g.t, lse, delta, dq.t], [Math.ceil(d.Tq / WG), d.B * d.H], DQ.pack({ ...d, q, k, v, g, dq }));
  // dK and dV may live in one buffer (packed qkv gradient): then one writable binding serves both.
  const packed = dk.t === dv.t;
  launch('flashAttention.backward', dkvKernel(d.dh, sg, KB, packed), [q.t, k.t, v.t, g.t, lse, delta, dk.t, ...(packed ? [] : [dv.t])], [Math.ceil(d.Tk / WG), d.B * d.H], DKV.pack({ ...d, q, k, v, g, dk, dv }));
  delta.dispose();
}

/** Contiguous [B, H, T, dh] layout. */
export function bhtd(t: Tensor): Strided {
  const [, H, T, dh] = t.shape;
  return { t, off: 0, sb: H * T * dh, sh: T * dh, st: dh };
}

/** Token-major [B, T, H·dh] layout of an [B, T, D] tensor viewed as H heads. */
function btd(t: Tensor, H: number, off = 0, rowStride?: number): Strided {
  const [, T, D] = t.shape;
  const st = rowStride ?? D;
  return { t, off, sb: T * st, sh: D / H, st };
}

export interface AttentionOptions { variant?: AttentionVariant }

/**
 * Multi-head self-attention straight from a packed projection qkv [B, T, 3·D] (channel = which·D + head·dh + e,
 * the timm/DiT layout), fused; returns [B, T, D] (channel = head·dh + e).
 */
export function flashAttentionPacked(qkv: Tensor, heads: number, opts: AttentionOptions = {}): Tensor {
  const op = 'flashAttention';
  check(qkv.ndim === 3 && qkv.shape[2] % (3 * heads) === 0, op, `qkv must be [B, T, 3·D] with D divisible by ${heads} heads, got ${fmtShape(qkv.shape)}`);
  const [B, T, D3] = qkv.shape;
  const D = D3 / 3, dh = D / heads;
  const d: Dims = { B, H: heads, Tq: T, Tk: T, dh, scale: 1 / Math.sqrt(dh) };
  const c = chosenFlash({ B, H: heads, Tq: T, Tk: T, dh, packed: true, dtype: qkv.dtype }, opts.variant);
  const part = (which: number): Strided => ({ t: qkv, off: which * D, sb: T * D3, sh: dh, st: D3 });
  const out = Tensor.empty([B, T, D], 'f32', op);
  const lse = flashForward(part(0), part(1), part(2), btd(out, heads), d, c);
  const y = record(op, out, [qkv], [qkv, out, lse], (g, [qs, os, ls]) => {
    const dqkv = Tensor.empty(qs.shape, 'f32', `${op}.backward`);
    const sp = (t: Tensor, which: number): Strided => ({ t, off: which * D, sb: T * D3, sh: dh, st: D3 });
    flashBackward(sp(qs, 0), sp(qs, 1), sp(qs, 2), btd(os, heads), btd(g, heads), ls, sp(dqkv, 0), sp(dqkv, 1), sp(dqkv, 2), d, c);
    return [dqkv];
  });
  lse.dispose();
  return y;
}

/**
 * Fused multi-head attention of separate q [B, Tq, D], k and v [B, Tk, D] (token-major heads, as a
 * cross-attention layer produces them); returns [B, Tq, D].
 */
export function flashAttention(q: Tensor, k: Tensor, v: Tensor, heads: number, opts: AttentionOptions = {}): Tensor {
  const op = 'flashAttention';
  check(q.ndim === 3 && k.ndim === 3 && v.ndim === 3 && q.shape[0] === k.shape[0] && k.shape[0] === v.shape[0] && q.shape[2] === k.shape[2] && k.shape[2] === v.shape[2] && k.shape[1] === v.shape[1], op,
    `q, k, v must be [B, Tq, D], [B, Tk, D], [B, Tk, D]; got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}, ${fmtShape(v.shape)}`);
  const [B, Tq, D] = q.shape, Tk = k.shape[1];
  check(D % heads === 0, op, `D=${D} is not divisible by ${heads} heads`);
  const dh = D / heads;
  const d: Dims = { B, H: heads, Tq, Tk, dh, scale: 1 / Math.sqrt(dh) };
  const c = chosenFlash({ B, H: heads, Tq, Tk, dh, packed: false, dtype: q.dtype }, opts.variant);
  const out = Tensor.empty([B, Tq, D], 'f32', op);
  const lse = flashForward(btd(q, heads), btd(k, heads), btd(v, heads), btd(out, heads), d, c);
  if (q.dtype === 'f16') check(!q.requiresGrad && !k.requiresGrad && !v.requiresGrad, op, 'f16 attention is for inference: gradients need f32 operands');
  const y = record(op, out, [q, k, v], [q, k, v, out, lse], (g, [qs, ks, vs, os, ls], need) => {
    const dq = Tensor.empty(q.shape, 'f32', `${op}.backward`);
    const dk = Tensor.empty(k.shape, 'f32', `${op}.backward`);
    const dv = Tensor.empty(v.shape, 'f32', `${op}.backward`);
    flashBackward(btd(qs, heads), btd(ks, heads), btd(vs, heads), btd(os, heads), btd(g, heads), ls, btd(dq, heads), btd(dk, heads), btd(dv, heads), d, c);
    return [need[0] ? dq : null, need[1] ? dk : null, need[2] ? dv : null];
  });
  lse.dispose();
  return y;
}

/** The same attention through matmul + softmax + matmul (materialises the Tq×Tk scores). */
export function attentionUnfused(q: Tensor, k: Tensor, v: Tensor, heads: number): Tensor {
  const [B, Tq, D] = q.shape, Tk = k.shape[1];
  const dh = D / heads;
  const split = (t: Tensor, T: number) => {
    const r = reshape(t, [B, T, heads, dh]);
    const p = permute(r, [0, 2, 1, 3]);
    r.dispose();
    return p;
  };
  const qh = split(q, Tq), kh = split(k, Tk), vh = split(v, Tk);
  const s = matmul(qh, kh, { transB: true, alpha: 1 / Math.sqrt(dh) });
  const p = softmax(s);
  const o = matmul(p, vh);
  const ot = permute(o, [0, 2, 1, 3]);
  const y = reshape(ot, [B, Tq, D]);
  for (const t of [qh, kh, vh, s, p, o, ot]) t.dispose();
  return y;
}

/** Splits a packed qkv [B, T, 3D] into q, k, v [B, T, D] (copies; for the unfused path). */
export function splitQkv(qkv: Tensor): [Tensor, Tensor, Tensor] {
  const [B, T, D3] = qkv.shape;
  const r = reshape(qkv, [B, T, 3, D3 / 3]);
  const p = permute(r, [2, 0, 1, 3]);
  r.dispose();
  const out = [0, 1, 2].map((i) => {
    const one = slice(p, 0, i, i + 1);
    const t = reshape(one, [B, T, D3 / 3]);
    one.dispose();
    return t;
  });
  p.dispose();
  return [out[0], out[1], out[2]];
}

/** Whether the fused kernel is used for cross-attention of this shape (else the unfused path). */
export function useFlash(B: number, H: number, Tq: number, Tk: number, dh: number): boolean {
  return chooseAttention({ B, H, Tq, Tk, dh, packed: false, dtype: 'f32' }) !== 'unfused';
}

/** Multi-head attention of q [B, Tq, D], k and v [B, Tk, D]: the variant chosen for the adapter and shape, or `opts.variant`. */
export function attention(q: Tensor, k: Tensor, v: Tensor, heads: number, opts: AttentionOptions = {}): Tensor {
  const [B, Tq, D] = q.shape;
  const variant = opts.variant ?? chooseAttention({ B, H: heads, Tq, Tk: k.shape[1], dh: D / heads, packed: false, dtype: q.dtype });
  return variant === 'unfused' ? attentionUnfused(q, k, v, heads) : flashAttention(q, k, v, heads, { variant });
}

/** Self-attention from a packed qkv [B, T, 3D]: the variant chosen for the adapter and shape, or `opts.variant`. */
export function selfAttention(qkv: Tensor, heads: number, opts: AttentionOptions = {}): Tensor {
  const [B, T, D3] = qkv.shape;
  const variant = opts.variant ?? chooseAttention({ B, H: heads, Tq: T, Tk: T, dh: D3 / 3 / heads, packed: true, dtype: qkv.dtype });
  if (variant !== 'unfused') return flashAttentionPacked(qkv, heads, { variant });
  const [q, k, v] = splitQkv(qkv);
  const y = attentionUnfused(q, k, v, heads);
  q.dispose(); k.dispose(); v.dispose();
  return y;
}

// ------------------------------------------------------------------------------------------ the family (kernels/registry.ts)
/**
 * Multi-head attention on token-major operands q [B, Tq, H·dh], k and v [B, Tk, H·dh], scale 1/√dh: the
 * element at flat index ((b·Tq + i)·H + h)·dh + e. Each (b, i, h) row's probabilities are computed once.
 */
function attentionAt(q: Arr, k: Arr, v: Arr, Tq: number, Tk: number, H: number, dh: number): (idx: number) => number {
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

const attn = (B: number, H: number, Tq: number, Tk: number, dh: number, o: Partial<AttentionProblem> = {}): AttentionProblem => ({ B, H, Tq, Tk, dh, packed: false, dtype: 'f32', ...o });

/** q, k, v [B, T, D] of a packed qkv [B, T, 3·D]. */
function unpack(qkv: ArrayLike<number>, B: number, T: number, D: number): Float64Array[] {
  const parts = [0, 1, 2].map(() => new Float64Array(B * T * D));
  for (let r = 0; r < B * T; r++) for (let w = 0; w < 3; w++) for (let c = 0; c < D; c++) parts[w][r * D + c] = qkv[(r * 3 + w) * D + c];
  return parts;
}

export const attentionFamily: Family<AttentionProblem> = {
  name: 'attention',
  file: 'kernels/attention.ts',
  variants: described(ATTENTION_VARIANTS, {
    flash1: 'fused, online softmax, one query row per lane, every lane loads each key/value row',
    flash2: 'fused, two query rows per lane',
    flash1g: 'fused, one query row per lane, key/value rows loaded once per subgroup and broadcast',
    flash2g: 'fused, two query rows per lane, key/value rows shared by broadcast',
    unfused: 'matmul, softmax, matmul (the scores materialised)',
  }),
  choose: chooseAttention,
  key: attentionKey,
  unsupported: (v, p) => attentionUnsupported(p, v as AttentionVariant),
  // Head dims up to 32: the kernels unroll over dh/4 and LLVM takes minutes on lavapipe for the ones without
  // subgroups at dh 72–128 (the live variant meets those in the DiT and VAE tests).
  problems: () => [
    attn(2, 3, 13, 9, 16),
    attn(1, 2, 33, 33, 24, { packed: true }),
    attn(2, 1, 1, 1, 4),
    attn(1, 2, 150, 41, 16),
    attn(1, 2, 7, 5, 6),
    attn(2, 2, 19, 19, 32, { dtype: 'f16' }),
  ],
  describe: (p) => `B${p.B} H${p.H} Tq${p.Tq} Tk${p.Tk} dh${p.dh}${p.packed ? ' packed qkv' : ''}${p.dtype === 'f16' ? ' f16' : ''}`,
  inputs: (p, seed) => {
    const D = p.H * p.dh;
    if (p.packed) return [normal([p.B, p.Tq, 3 * D], seed)];
    const f16 = p.dtype === 'f16';
    return [[p.Tq, seed], [p.Tk, seed + 1], [p.Tk, seed + 2]].map(([T, s]) => {
      const x = normal([p.B, T, D], s, 1, !f16);
      return f16 ? { ...x, data: f16Values(x.data as Float32Array), dtype: 'f16' as const } : x;
    });
  },
  reference: (p, x) => {
    const [q, k, v] = p.packed ? unpack(x[0], p.B, p.Tq, p.H * p.dh) : x;
    return [attentionAt(q, k, v, p.Tq, p.Tk, p.H, p.dh)];
  },
  run: (p, x, variant) => [p.packed ? selfAttention(x[0], p.H, { variant: variant as AttentionVariant }) : attention(x[0], x[1], x[2], p.H, { variant: variant as AttentionVariant })],
  tolerance: () => 3e-6,
};
