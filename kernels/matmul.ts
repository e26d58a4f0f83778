// Batched matmul C = act(alpha·op(A)·op(B) + bias) + residual, either operand transposed without a copy,
// f32 accumulation (f16 inputs where the adapter has shader-f16), and its backward.
//
// Variants (the autotuner in kernels/autotune.ts picks one per adapter and shape):
//  - `rb{R}x{C}` register-blocked, no workgroup memory or barriers (what CPU drivers such as lavapipe favour):
//    each lane owns R rows, the workgroup shares a block of C columns, so the column operand is loaded
//    uniformly (one scalar load + broadcast on SIMD CPUs) and each lane's own loads are vec4 along k;
//  - `rb{R}x{C}s` the same on the transposed problem (Cᵀ = Bᵀ·Aᵀ), for skinny M;
//  - `tiled` 64×64 tiles through workgroup memory, 16×16 threads of 4×4 outputs (what GPUs favour);
//  - `splitk{S}` the tiled kernel over S slices of K into a scratch buffer, then a reduction (long K).
// A forced variant (`variant`) also runs the backward's products.
import { gpu } from '../engine/device.js';
import { Tensor, record, check, checkDtype, fmtShape, isGradEnabled, type DType } from '../engine/tensor.js';
import { uniforms, launch } from './util.js';
import { map, helpersFor } from './map.js';
import { sum, sumTo } from './reduce.js';
import { reshape } from './shape.js';
import { tunedVariant } from './tuning.js';
import { normal, f16Values, gelu64, silu64, type Arr, type Family, type HostInput } from './reference.js';

export type Activation = 'gelu' | 'silu' | 'relu';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  /** Added per output column (length N). */
  bias?: Tensor;
  activation?: Activation;
  /** Added after the activation (same shape as the output). */
  residual?: Tensor;
  /** Multiplies the product before bias/activation. */
  alpha?: number;
  /** Forces a kernel variant (tests, benchmarks), for the backward's products as well. */
  variant?: string;
}

export interface MatmulProblem {
  M: number; N: number; K: number; batch: number;
  transA: boolean; transB: boolean;
  /** Elements between batch entries of A / B; 0 for a 2-D operand shared by the batch. */
  strideA: number; strideB: number;
  dtA: DType; dtB: DType;
}

export function problemKey(p: MatmulProblem): string {
  return `${p.batch}x${p.M}x${p.N}x${p.K}${p.transA ? 'T' : 'N'}${p.transB ? 'T' : 'N'}${p.strideA ? '' : 'a'}${p.strideB ? '' : 'b'}${p.dtA}${p.dtB}`;
}

/** The registered variants (kernels/registry.ts checks each; any `rb{R}x{C}[g][s]` also parses). */
export const MATMUL_VARIANTS = [
  'rb4x4', 'rb4x8', 'rb2x16', 'rb4x8g', 'rb4x16g', 'rb2x24g', 'rb3x16g', 'rb8x8g',
  'rb4x4s', 'rb4x8s', 'rb4x8gs', 'rb4x16gs', 'tiled', 'tiled128', 'splitk4', 'splitk16',
];

/** Register-blocked shapes worth timing on CPU drivers (rows per lane × shared columns). */
const RB_CANDIDATES = ['rb4x4', 'rb4x8', 'rb2x16', 'rb4x8g', 'rb4x16g', 'rb2x24g', 'rb3x16g', 'rb8x8g'];

/** The variants the autotuner times for a problem (those that do not apply are left out by the tuner). */
export function matmulCandidates(p: MatmulProblem): string[] {
  const soft = gpu().adapter.isSoftware;
  const list = soft ? [...RB_CANDIDATES] : ['tiled128', 'tiled', 'rb4x4'];
  // The swapped problem (lanes along N) for short M.
  if (p.M < 256 || p.N < 64) list.push(...(soft ? ['rb4x8gs', 'rb4x16gs', 'rb4x8s'] : ['rb4x4s']));
  if (p.K >= 4 * Math.max(p.M, p.N)) list.push('splitk4', 'splitk16');
  else if (!soft) list.push('splitk4');
  return list;
}

/** The adapter kind's default: CPU drivers register-blocked, GPUs workgroup-tiled. */
export function defaultMatmulVariant(p: MatmulProblem): string {
  const g = gpu();
  if (g.adapter.isSoftware) {
    // Subgroup-shared loads when the adapter has subgroups (4× fewer load instructions on CPU drivers).
    const sg = subgroupSize() >= 4 ? 'g' : '';
    // Lanes run along M (4 rows each, 64 per workgroup): for short M, run them along N instead.
    const v = p.M < 256 && p.N > p.M ? `rb4x8${sg}s` : `rb4x8${sg}`;
    return matmulUnsupported(p, v) ? v.replace('g', '') : v;
  }
  if (p.K >= 8 * Math.max(p.M, p.N) && p.M * p.N * p.batch < 65536) return 'splitk16';
  // Measured on an H100 (Dawn/Vulkan): the 64×64 tiles beat the 128×128 ones at DiT sizes.
  return 'tiled';
}

/** The variant the automatic choice takes: a tuned one for this adapter, else the default. */
export function chooseMatmulVariant(p: MatmulProblem): string {
  return tunedVariant('matmul', problemKey(p), p) ?? defaultMatmulVariant(p);
}

/** The fused activations: `f` of a WGSL expression, `df` the gradient in g and the pre-activation z. */
const ACT: Record<Activation, { f: (v: string) => string; df: string }> = {
  gelu: { f: (v) => `gelu_tanh(${v})`, df: 'g * gelu_tanh_grad(z)' },
  silu: { f: (v) => `silu_(${v})`, df: 'g * silu_grad(z)' },
  relu: { f: (v) => `max(${v}, T(0.0))`, df: 'select(T(0.0), g, z > T(0.0))' },
};

/** Everything a matmul kernel's source depends on. */
export interface KernelSpec {
  /** X(p,k) is stored [K,P] (else [P,K]); Y(k,q) is stored [Q,K] (else [K,Q]); D stored transposed [Q,P]. */
  tX: boolean; tY: boolean; tD: boolean;
  vecX: boolean; vecY: boolean; vecD: boolean;
  dtX: DType; dtY: DType;
  bias: boolean; act: Activation | null; residual: boolean; savePre: boolean;
}

// ------------------------------------------------------------------------------------------ WGSL pieces
/** X is P×K (rows p), Y K×Q (columns q), D P×Q; ld* leading dimensions, s* batch strides, K split in nsplit chunks of kchunk. */
export const MatmulUniforms = uniforms({
  P: 'u32', Q: 'u32', K: 'u32', batch: 'u32', ldx: 'u32', ldy: 'u32', ldd: 'u32', nsplit: 'u32',
  sx: 'u32', sy: 'u32', sd: 'u32', kchunk: 'u32', alpha: 'f32',
});

function bindings(s: KernelSpec): string {
  const ty = (dt: DType) => (dt === 'f16' ? 'f16' : 'f32');
  const lines = [
    MatmulUniforms.wgsl,
    `@group(0) @binding(1) var<storage, read> X: array<${ty(s.dtX)}>;`,
    `@group(0) @binding(2) var<storage, read> Y: array<${ty(s.dtY)}>;`,
  ];
  let b = 3;
  if (s.vecX) lines.push(`@group(0) @binding(${b++}) var<storage, read> X4: array<vec4<${ty(s.dtX)}>>;`);
  if (s.vecY) lines.push(`@group(0) @binding(${b++}) var<storage, read> Y4: array<vec4<${ty(s.dtY)}>>;`);
  if (s.bias) lines.push(`@group(0) @binding(${b++}) var<storage, read> bias: array<f32>;`);
  if (s.residual) lines.push(`@group(0) @binding(${b++}) var<storage, read> res: array<f32>;`);
  lines.push(`@group(0) @binding(${b++}) var<storage, read_write> D: array<f32>;`);
  if (s.savePre) lines.push(`@group(0) @binding(${b++}) var<storage, read_write> Z: array<f32>;`);
  return lines.join('\n');
}

/** `fn store(v, p, q, zoff)`: the fused epilogue for one output element (bias/residual index by p,q). */
function epilogue(s: KernelSpec): string {
  // The bias is per output column of C: column q of D when not transposed, row p when transposed.
  const col = s.tD ? 'p' : 'q';
  const idx = s.tD ? 'q * u.ldd + p' : 'p * u.ldd + q';
  return /* wgsl */`
alias T = f32;
${s.act ? helpersFor(ACT[s.act].f('v')) : ''}
fn store(acc: f32, p: u32, q: u32, doff: u32) {
  var v = acc * u.alpha;
  ${s.bias ? `v += bias[${col}];` : ''}
  let i = doff + ${idx};
  ${s.savePre ? 'Z[i] = v;' : ''}
  ${s.act ? `v = ${ACT[s.act].f('v')};` : ''}
  ${s.residual ? 'v += res[i];' : ''}
  D[i] = v;
}`;
}

const enableF16 = (s: KernelSpec) => (s.dtX === 'f16' || s.dtY === 'f16' ? 'enable f16;' : '');

/**
 * Register-blocked kernel: workgroup of WG lanes along p (R rows each), C columns of q shared by the
 * workgroup. Batch index and K-split in workgroup_id.z.
 */
export function rbKernel(s: KernelSpec, R: number, C: number, WG = 64, sg = 0): string {
  const f32 = (e: string, dt: DType) => (dt === 'f16' ? `f32(${e})` : e);
  const v4 = (e: string, dt: DType) => (dt === 'f16' ? `vec4f(${e})` : e);
  const lines: string[] = [];
  const a = (r: number, kk: number) => `a${r}_${kk}`;
  const b = (kk: number, c: number) => `b${kk}_${c}`;
  // X loads for 4 consecutive k (kk) and R rows.
  const loadX: string[] = [];
  if (!s.tX) {
    for (let r = 0; r < R; r++) {
      if (s.vecX) loadX.push(`let xr${r} = ${v4(`X4[(xrow${r} + k) >> 2u]`, s.dtX)};`);
      else loadX.push(`let xr${r} = vec4f(${[0, 1, 2, 3].map((kk) => f32(`X[xrow${r} + k + ${kk}u]`, s.dtX)).join(', ')});`);
      for (let kk = 0; kk < 4; kk++) loadX.push(`let ${a(r, kk)} = xr${r}[${kk}];`);
    }
  } else {
    for (let kk = 0; kk < 4; kk++) {
      for (let r4 = 0; r4 < R; r4 += 4) {
        const base = `xoff + (k + ${kk}u) * u.ldx + p0 + ${r4}u`;
        if (s.vecX) loadX.push(`let xk${kk}_${r4} = ${v4(`X4[(${base}) >> 2u]`, s.dtX)};`);
        else loadX.push(`let xk${kk}_${r4} = vec4f(${[0, 1, 2, 3].map((j) => (r4 + j < R ? f32(`X[min(${base} + ${j}u, xlast)]`, s.dtX) : '0.0')).join(', ')});`);
        for (let j = 0; j < 4 && r4 + j < R; j++) loadX.push(`let ${a(r4 + j, kk)} = xk${kk}_${r4}[${j}];`);
      }
    }
  }
  // Y loads (uniform across the workgroup). With subgroups (sg = subgroup size), the block of C vec4s a
  // k-step needs is loaded once per subgroup, one vec4 per lane, and broadcast: sg× fewer load instructions,
  // which is what CPU drivers pay for (each load costs about as much as 16 vec4 FMAs on llvmpipe).
  const loadY: string[] = [];
  const sgSetup: string[] = [];
  if (sg) {
    const NV = C; // vec4s per k-step: columns (tY, vec over k) or 4 rows × C/4 column quads (vec over q)
    const T = Math.ceil(NV / sg);
    for (let t = 0; t < T; t++) {
      sgSetup.push(`let v${t} = min(${t * sg}u + sgid, ${NV - 1}u);`);
      if (s.tY) sgSetup.push(`let yl${t} = yoff + min(q0 + v${t}, u.Q - 1u) * u.ldy;`);
      else sgSetup.push(`let yl${t} = yoff + (v${t} / ${C / 4}u) * u.ldy + min(q0 + (v${t} % ${C / 4}u) * 4u, u.Q - 4u);`);
      loadY.push(`let ld${t} = ${v4(s.tY ? `Y4[(yl${t} + k) >> 2u]` : `Y4[(yl${t} + k * u.ldy) >> 2u]`, s.dtY)};`);
    }
    for (let v = 0; v < NV; v++) {
      loadY.push(`let yv${v} = subgroupBroadcast(ld${Math.floor(v / sg)}, ${v % sg}u);`);
      if (s.tY) for (let kk = 0; kk < 4; kk++) loadY.push(`let ${b(kk, v)} = yv${v}[${kk}];`);
      else {
        const kk = Math.floor(v / (C / 4)), c4 = (v % (C / 4)) * 4;
        for (let j = 0; j < 4; j++) loadY.push(`let ${b(kk, c4 + j)} = yv${v}[${j}];`);
      }
    }
  } else if (s.tY) {
    for (let c = 0; c < C; c++) {
      if (s.vecY) loadY.push(`let yc${c} = ${v4(`Y4[(ycol${c} + k) >> 2u]`, s.dtY)};`);
      else loadY.push(`let yc${c} = vec4f(${[0, 1, 2, 3].map((kk) => f32(`Y[ycol${c} + k + ${kk}u]`, s.dtY)).join(', ')});`);
      for (let kk = 0; kk < 4; kk++) loadY.push(`let ${b(kk, c)} = yc${c}[${kk}];`);
    }
  } else {
    for (let kk = 0; kk < 4; kk++) {
      for (let c4 = 0; c4 < C; c4 += 4) {
        const base = `yoff + (k + ${kk}u) * u.ldy + q0 + ${c4}u`;
        if (s.vecY && C % 4 === 0) loadY.push(`let yk${kk}_${c4} = ${v4(`Y4[(${base}) >> 2u]`, s.dtY)};`);
        else loadY.push(`let yk${kk}_${c4} = vec4f(${[0, 1, 2, 3].map((j) => (c4 + j < C ? f32(`Y[min(${base} + ${j}u, ylast)]`, s.dtY) : '0.0')).join(', ')});`);
        for (let j = 0; j < 4 && c4 + j < C; j++) loadY.push(`let ${b(kk, c4 + j)} = yk${kk}_${c4}[${j}];`);
      }
    }
  }
  const fmas: string[] = [];
  for (let kk = 0; kk < 4; kk++) for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) fmas.push(`acc${r}_${c} = fma(${a(r, kk)}, ${b(kk, c)}, acc${r}_${c});`);
  // Scalar tail for K % 4 (and the whole loop when the chunk is short).
  const xs = (r: number) => (s.tX ? `X[xoff + k * u.ldx + min(p0 + ${r}u, u.P - 1u)]` : `X[xrow${r} + k]`);
  const ys = (c: number) => (s.tY ? `Y[ycol${c} + k]` : `Y[yoff + k * u.ldy + min(q0 + ${c}u, u.Q - 1u)]`);
  const tail: string[] = [];
  for (let r = 0; r < R; r++) tail.push(`let t${r} = ${f32(xs(r), s.dtX)};`);
  for (let c = 0; c < C; c++) tail.push(`let s${c} = ${f32(ys(c), s.dtY)};`);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) tail.push(`acc${r}_${c} = fma(t${r}, s${c}, acc${r}_${c});`);
  const stores: string[] = [];
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C; c++) {
      stores.push(`if (p0 + ${r}u < u.P && q0 + ${c}u < u.Q) { store(acc${r}_${c}, p0 + ${r}u, q0 + ${c}u, doff); }`);
    }
  }
  lines.push(`
${enableF16(s)}
${sg ? 'enable subgroups;' : ''}
${bindings(s)}
${epilogue(s)}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u${sg ? ', @builtin(subgroup_invocation_id) sgid: u32' : ''}) {
  let split = wid.z % u.nsplit;
  let bz = wid.z / u.nsplit;
  let p0 = (wid.y * ${WG}u + lid.x) * ${R}u;
  let q0 = wid.x * ${C}u;
  let kbeg = split * u.kchunk;
  let kend = min(kbeg + u.kchunk, u.K);
  let xoff = bz * u.sx;
  let yoff = bz * u.sy;
  let doff = bz * u.sd + split * u.batch * u.sd;
  let xlast = xoff + (u.K - 1u) * u.ldx + u.P - 1u;
  let ylast = yoff + (u.K - 1u) * u.ldy + u.Q - 1u;
  ${s.tX ? '' : Array.from({ length: R }, (_, r) => `let xrow${r} = xoff + min(p0 + ${r}u, u.P - 1u) * u.ldx;`).join('\n  ')}
  ${s.tY ? Array.from({ length: C }, (_, c) => `let ycol${c} = yoff + min(q0 + ${c}u, u.Q - 1u) * u.ldy;`).join('\n  ') : ''}
  ${sgSetup.join('\n  ')}
  ${Array.from({ length: R }, (_, r) => Array.from({ length: C }, (_, c) => `var acc${r}_${c} = 0.0;`).join(' ')).join('\n  ')}
  var k = kbeg;
  let k4 = kbeg + ((kend - kbeg) & ~3u);
  for (; k < k4; k += 4u) {
    ${loadX.join('\n    ')}
    ${loadY.join('\n    ')}
    ${fmas.join('\n    ')}
  }
  for (; k < kend; k++) {
    ${tail.join('\n    ')}
  }
  ${stores.join('\n  ')}
}`);
  return lines.join('\n');
}

/** Workgroup-tiled kernel: 64×64 tile of D per 16×16 workgroup, 4×4 per thread, K staged in steps of 16. */
export function tiledKernel(s: KernelSpec): string {
  const f32 = (e: string, dt: DType) => (dt === 'f16' ? `f32(${e})` : e);
  return /* wgsl */`
${enableF16(s)}
${bindings({ ...s, vecX: false, vecY: false })}
${epilogue(s)}
var<workgroup> Xs: array<array<f32, 64>, 16>;
var<workgroup> Ys: array<array<f32, 64>, 16>;
@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let split = wid.z % u.nsplit;
  let bz = wid.z / u.nsplit;
  let kbeg = split * u.kchunk;
  let kend = min(kbeg + u.kchunk, u.K);
  let tid = lid.y * 16u + lid.x;
  let p0 = wid.y * 64u; let q0 = wid.x * 64u;
  let xoff = bz * u.sx; let yoff = bz * u.sy;
  let doff = bz * u.sd + split * u.batch * u.sd;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = kbeg; k0 < kend; k0 += 16u) {
    for (var i = 0u; i < 4u; i++) {
      let idx = tid + i * 256u;
      // Neighbouring threads read neighbouring addresses (coalesced): along k, or along p/q when transposed.
      ${s.tX ? 'let xk = idx / 64u; let xp = idx % 64u;' : 'let xk = idx % 16u; let xp = idx / 16u;'}
      ${s.tY ? 'let yk = idx % 16u; let yq = idx / 16u;' : 'let yk = idx / 64u; let yq = idx % 64u;'}
      let kx = min(k0 + xk, u.K - 1u); let ky = min(k0 + yk, u.K - 1u);
      let pp = min(p0 + xp, u.P - 1u);
      let qq = min(q0 + yq, u.Q - 1u);
      Xs[xk][xp] = select(0.0, ${f32(`X[${s.tX ? 'xoff + kx * u.ldx + pp' : 'xoff + pp * u.ldx + kx'}]`, s.dtX)}, k0 + xk < kend);
      Ys[yk][yq] = select(0.0, ${f32(`Y[${s.tY ? 'yoff + qq * u.ldy + ky' : 'yoff + ky * u.ldy + qq'}]`, s.dtY)}, k0 + yk < kend);
    }
    workgroupBarrier();
    for (var k = 0u; k < 16u; k++) {
      var xv: array<f32, 4>; var yv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { xv[i] = Xs[k][lid.y * 4u + i]; yv[i] = Ys[k][lid.x * 4u + i]; }
      for (var i = 0u; i < 4u; i++) { for (var j = 0u; j < 4u; j++) { acc[i][j] = fma(xv[i], yv[j], acc[i][j]); } }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let p = p0 + lid.y * 4u + i;
    for (var j = 0u; j < 4u; j++) {
      let q = q0 + lid.x * 4u + j;
      if (p < u.P && q < u.Q) { store(acc[i][j], p, q, doff); }
    }
  }
}`;
}

/**
 * 128×128 tiles, K in steps of 8, 16×16 threads of 8×8 outputs each (rows ty·8…, columns tx·4… and 64 + tx·4…,
 * so shared-memory reads are vec4 and conflict-free): the register blocking GPUs need to approach their
 * FMA rate. Only for adapters with enough workgroup memory (8 KiB here).
 */
export function tiled128Kernel(s: KernelSpec): string {
  const f32 = (e: string, dt: DType) => (dt === 'f16' ? `f32(${e})` : e);
  return /* wgsl */`
${enableF16(s)}
${bindings({ ...s, vecX: false, vecY: false })}
${epilogue(s)}
var<workgroup> Xs: array<array<vec4f, 32>, 8>;
var<workgroup> Ys: array<array<vec4f, 32>, 8>;
@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let split = wid.z % u.nsplit;
  let bz = wid.z / u.nsplit;
  let kbeg = split * u.kchunk;
  let kend = min(kbeg + u.kchunk, u.K);
  let tid = lid.y * 16u + lid.x;
  let p0 = wid.y * 128u; let q0 = wid.x * 128u;
  let xoff = bz * u.sx; let yoff = bz * u.sy;
  let doff = bz * u.sd + split * u.batch * u.sd;
  ${Array.from({ length: 16 }, (_, i) => `var acc${i} = vec4f(0.0);`).join(' ')}
  for (var k0 = kbeg; k0 < kend; k0 += 8u) {
    for (var i = 0u; i < 4u; i++) {
      let idx = tid + i * 256u;
      ${s.tX ? 'let xk = idx / 128u; let xp = idx % 128u;' : 'let xk = idx % 8u; let xp = idx / 8u;'}
      ${s.tY ? 'let yk = idx % 8u; let yq = idx / 8u;' : 'let yk = idx / 128u; let yq = idx % 128u;'}
      let kx = min(k0 + xk, u.K - 1u); let ky = min(k0 + yk, u.K - 1u);
      let pp = min(p0 + xp, u.P - 1u); let qq = min(q0 + yq, u.Q - 1u);
      Xs[xk][xp / 4u][xp % 4u] = select(0.0, ${f32(`X[${s.tX ? 'xoff + kx * u.ldx + pp' : 'xoff + pp * u.ldx + kx'}]`, s.dtX)}, k0 + xk < kend);
      Ys[yk][yq / 4u][yq % 4u] = select(0.0, ${f32(`Y[${s.tY ? 'yoff + qq * u.ldy + ky' : 'yoff + ky * u.ldy + qq'}]`, s.dtY)}, k0 + yk < kend);
    }
    workgroupBarrier();
    // Fully unrolled so the 64 accumulators stay in registers (no dynamically indexed arrays).
    ${Array.from({ length: 8 }, (_, k) => `{
      let a0 = Xs[${k}][lid.y * 2u]; let a1 = Xs[${k}][lid.y * 2u + 1u];
      let b0 = Ys[${k}][lid.x]; let b1 = Ys[${k}][lid.x + 16u];
      ${Array.from({ length: 4 }, (_, i) => `acc${i * 2} = fma(vec4f(a0[${i}]), b0, acc${i * 2}); acc${i * 2 + 1} = fma(vec4f(a0[${i}]), b1, acc${i * 2 + 1}); acc${8 + i * 2} = fma(vec4f(a1[${i}]), b0, acc${8 + i * 2}); acc${8 + i * 2 + 1} = fma(vec4f(a1[${i}]), b1, acc${8 + i * 2 + 1});`).join('\n      ')}
    }`).join('\n    ')}
    workgroupBarrier();
  }
  ${Array.from({ length: 8 }, (_, r) => Array.from({ length: 2 }, (_, h) => {
    const a = `acc${Math.floor(r / 4) * 8 + (r % 4) * 2 + h}`;
    return `{ let p = p0 + lid.y * 8u + ${r}u; let q = q0 + ${h * 64}u + lid.x * 4u; if (p < u.P) { ${[0, 1, 2, 3].map((j) => `if (q + ${j}u < u.Q) { store(${a}[${j}], p, q + ${j}u, doff); }`).join(' ')} } }`;
  }).join('\n  ')).join('\n  ')}
}`;
}

// ------------------------------------------------------------------------------------------ launch
/** The subgroup size kernels may assume (the adapter's minimum), or 0 without the subgroups feature. */
export function subgroupSize(): number {
  const g = gpu();
  return g.hasSubgroups ? g.adapter.subgroupMinSize : 0;
}

interface Operands { x: Tensor; y: Tensor; out: Tensor; pre: Tensor | null; bias?: Tensor; residual?: Tensor }

type ParsedVariant = { kind: 'rb'; R: number; C: number; sg: boolean; swap: boolean } | { kind: 'tiled'; split: number; big: boolean };

/** Parses a variant name: rb{R}x{C}[g][s] | tiled | tiled128 | splitk{S}. */
export function parseVariant(v: string): ParsedVariant {
  const m = /^rb(\d+)x(\d+)(g?)(s?)$/.exec(v);
  if (m) return { kind: 'rb', R: +m[1], C: +m[2], sg: m[3] === 'g', swap: m[4] === 's' };
  if (v === 'tiled') return { kind: 'tiled', split: 1, big: false };
  if (v === 'tiled128') return { kind: 'tiled', split: 1, big: true };
  const sk = /^splitk(\d+)$/.exec(v);
  if (sk) return { kind: 'tiled', split: +sk[1], big: false };
  check(false, 'matmul', `unknown variant '${v}' (rb{R}x{C}[g][s], tiled, tiled128 or splitk{S})`);
}

/**
 * How variant `v` lays problem `pr` out: X is the per-lane operand (rows p), Y the shared one (columns q);
 * the swapped variants compute Cᵀ = op(B)ᵀ·op(A)ᵀ. vec4 loads need rows in whole vec4s.
 */
function layoutOf(pr: MatmulProblem, v: ParsedVariant) {
  const swap = v.kind === 'rb' && v.swap;
  const { M, N, K } = pr;
  const tX = swap ? !pr.transB : pr.transA;
  const tY = swap ? !pr.transA : pr.transB;
  const ldx = swap ? (pr.transB ? K : N) : (pr.transA ? M : K);
  const ldy = swap ? (pr.transA ? M : K) : (pr.transB ? K : N);
  const sx = swap ? pr.strideB : pr.strideA, sy = swap ? pr.strideA : pr.strideB;
  const aligned = (ld: number, s: number) => ld % 4 === 0 && s % 4 === 0;
  return {
    swap, tX, tY, ldx, ldy, sx, sy,
    P: swap ? N : M, Q: swap ? M : N,
    vecX: v.kind === 'rb' && aligned(ldx, sx) && (!tX || v.R % 4 === 0),
    vecY: v.kind === 'rb' && aligned(ldy, sy) && (tY || v.C % 4 === 0),
  };
}

/** Why variant `variant` cannot run problem `p` as named on this adapter (null when it can). */
export function matmulUnsupported(p: MatmulProblem, variant: string): string | null {
  if ((p.dtA === 'f16' || p.dtB === 'f16') && !gpu().hasF16) return 'f16 operands need shader-f16, which this adapter lacks';
  const v = parseVariant(variant);
  if (v.kind !== 'rb' || !v.sg) return null;
  if (subgroupSize() < 4) return `subgroup-shared loads need subgroups of at least 4 lanes (this adapter: ${gpu().hasSubgroups ? subgroupSize() : 'no subgroups'})`;
  if (!layoutOf(p, v).vecY) return 'subgroup-shared loads need the shared operand in whole vec4 rows (leading dimension and batch stride multiples of 4)';
  return null;
}

/**
 * Runs the kernel for problem `pr` (C[b] = op(A[b])·op(B[b]), M×N, K), writing `out` (and `pre`, the
 * pre-activation, when given). No autograd.
 */
function run(pr: MatmulProblem, ops: Operands, variant: string, act: Activation | null, alpha: number): void {
  const v = parseVariant(variant);
  const { M, N, K, batch } = pr;
  const { swap, tX, tY, ldx, ldy, sx, sy, P, Q, vecX, vecY } = layoutOf(pr, v);
  const [x, y] = swap ? [ops.y, ops.x] : [ops.x, ops.y];
  const split = v.kind === 'tiled' ? Math.max(1, Math.min(v.split, Math.ceil(K / 16))) : 1;
  const kchunk = split > 1 ? Math.ceil(K / split / 16) * 16 : K;
  const nsplit = split > 1 ? Math.ceil(K / kchunk) : 1;
  const spec: KernelSpec = {
    tX, tY, tD: swap, vecX, vecY,
    vecD: false,
    dtX: x.dtype, dtY: y.dtype,
    bias: !!ops.bias && nsplit === 1, act: nsplit === 1 ? act : null, residual: !!ops.residual && nsplit === 1,
    savePre: !!ops.pre && nsplit === 1,
  };
  const target = nsplit > 1 ? Tensor.empty([nsplit, batch, M, N], 'f32', 'matmul.splitk') : ops.out;
  const params = MatmulUniforms.pack({ P, Q, K, batch, ldx, ldy, ldd: N, nsplit, sx, sy, sd: M * N, kchunk, alpha: nsplit > 1 ? 1 : alpha });
  const tensors: Tensor[] = [x, y];
  if (spec.vecX) tensors.push(x);
  if (spec.vecY) tensors.push(y);
  if (spec.bias) tensors.push(ops.bias!);
  if (spec.residual) tensors.push(ops.residual!);
  tensors.push(target);
  if (spec.savePre) tensors.push(ops.pre!);
  if (v.kind === 'rb') {
    const WG = 64;
    const sg = v.sg && spec.vecY && subgroupSize() >= 4 ? subgroupSize() : 0;
    launch('matmul', rbKernel(spec, v.R, v.C, WG, sg), tensors, [Math.ceil(Q / v.C), Math.ceil(P / (WG * v.R)), batch * nsplit], params, `${batch}x${M}x${N}x${K}${pr.transA ? 'T' : 'N'}${pr.transB ? 'T' : 'N'} ${variant}`);
  } else if (v.big) {
    launch('matmul', tiled128Kernel(spec), tensors, [Math.ceil(Q / 128), Math.ceil(P / 128), batch * nsplit], params, `${batch}x${M}x${N}x${K}${pr.transA ? 'T' : 'N'}${pr.transB ? 'T' : 'N'} ${variant}`);
  } else {
    launch('matmul', tiledKernel(spec), tensors, [Math.ceil(Q / 64), Math.ceil(P / 64), batch * nsplit], params, `${batch}x${M}x${N}x${K}${pr.transA ? 'T' : 'N'}${pr.transB ? 'T' : 'N'} ${variant}`);
  }
  if (nsplit > 1) {
    // Sum the K slices, then apply the epilogue elementwise.
    const s = sum(target, 0);
    target.dispose();
    epilogueElementwise(s, ops, act, alpha);
    s.dispose();
  }
}

function epilogueElementwise(s: Tensor, ops: Operands, act: Activation | null, alpha: number): void {
  const inputs: Record<string, Tensor> = { s: s.view(ops.out.shape) };
  let v = 's * p';
  if (ops.bias) { inputs.bias = ops.bias; v = `(${v} + bias)`; }
  if (ops.pre) map(v, inputs, { label: 'matmul.epilogue', p: alpha, out: ops.pre });
  let e = act ? ACT[act].f(v) : v;
  if (ops.residual) { inputs.res = ops.residual; e = `${e} + res`; }
  map(e, inputs, { label: 'matmul.epilogue', p: alpha, out: ops.out });
}

// ------------------------------------------------------------------------------------------ the op
function problemOf(a: Tensor, b: Tensor, transA: boolean, transB: boolean): MatmulProblem & { outShape: number[] } {
  const op = 'matmul';
  check(a.ndim >= 2 && b.ndim >= 2, op, `needs 2-D or batched operands, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  const [ar, ac] = a.shape.slice(-2), [br, bc] = b.shape.slice(-2);
  const M = transA ? ac : ar, K = transA ? ar : ac;
  const Kb = transB ? bc : br, N = transB ? br : bc;
  check(K === Kb, op, `inner dimensions differ: ${fmtShape(a.shape)}${transA ? 'ᵀ' : ''} · ${fmtShape(b.shape)}${transB ? 'ᵀ' : ''} (${K} vs ${Kb})`);
  const ba = a.shape.slice(0, -2), bb = b.shape.slice(0, -2);
  const batchA = ba.reduce((x, y) => x * y, 1), batchB = bb.reduce((x, y) => x * y, 1);
  const same = ba.length === bb.length && ba.every((d, i) => d === bb[i]);
  check(same || ba.length === 0 || bb.length === 0, op, `batch dimensions ${fmtShape(ba)} and ${fmtShape(bb)} must match (or one operand be 2-D)`);
  const batchShape = ba.length ? ba : bb;
  const batch = Math.max(batchA, batchB);
  return {
    M, N, K, batch, transA, transB,
    strideA: ba.length ? M * K : 0, strideB: bb.length ? K * N : 0,
    dtA: a.dtype, dtB: b.dtype,
    outShape: [...batchShape, M, N],
  };
}

/**
 * op(A)·op(B) with the fused epilogue `act(alpha·AB + bias) + residual`. A: [..., M, K] ([..., K, M] with
 * transA), B: [..., K, N] ([..., N, K] with transB); batch dims equal, or one operand 2-D (shared).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = !!opts.transA, transB = !!opts.transB;
  checkDtype('matmul', a, 'f32', 'f16');
  checkDtype('matmul', b, 'f32', 'f16');
  if (a.dtype === 'f16' || b.dtype === 'f16') check(gpu().hasF16, 'matmul', 'f16 operands need the shader-f16 feature, which this adapter lacks');
  // A shared (2-D) B with a batched, non-transposed A is one big GEMM: fold A's batch into M.
  if (a.ndim > 2 && b.ndim === 2 && !transA) {
    const lead = a.shape.slice(0, -1);
    const rows = lead.reduce((x, y) => x * y, 1);
    const flat = reshape(a, [rows, a.shape[a.ndim - 1]]);
    const res = opts.residual ? reshape(opts.residual, [rows, opts.residual.size / rows]) : undefined;
    const out = matmul(flat, b, { ...opts, residual: res });
    const shaped = reshape(out, [...lead, out.shape[1]]);
    for (const x of [flat, res, out]) x?.dispose();
    return shaped;
  }
  const pr = problemOf(a, b, transA, transB);
  const { M, N, outShape } = pr;
  if (opts.bias) check(opts.bias.size === N && opts.bias.dtype === 'f32', 'matmul', `bias must be f32 of length ${N}, got ${opts.bias.dtype} ${fmtShape(opts.bias.shape)}`);
  if (opts.residual) check(opts.residual.size === pr.batch * M * N && opts.residual.dtype === 'f32', 'matmul', `residual must be f32 ${fmtShape(outShape)}, got ${fmtShape(opts.residual.shape)}`);
  const act = opts.activation ?? null;
  const alpha = opts.alpha ?? 1;
  const needGrad = isGradEnabled() && [a, b, opts.bias, opts.residual].some((t) => t?.requiresGrad);
  const out = Tensor.empty(outShape, 'f32', 'matmul');
  const pre = act && needGrad ? Tensor.empty(outShape, 'f32', 'matmul.pre') : null;
  const variant = opts.variant ?? chooseMatmulVariant(pr);
  run(pr, { x: a, y: b, out, pre, bias: opts.bias, residual: opts.residual }, variant, act, alpha);
  const inputs = [a, b, ...(opts.bias ? [opts.bias] : []), ...(opts.residual ? [opts.residual] : [])];
  const saved = [a, b, ...(pre ? [pre] : [])];
  const result = record('matmul', out, inputs, saved, (g, [as, bs, zs], need) => {
    // gz: gradient at the pre-activation, then scaled by alpha for the operands.
    const gz = act ? map(ACT[act].df, { g, z: zs }, { label: 'matmul.backward' }) : g;
    const grads: (Tensor | null)[] = [null, null];
    const ga = alpha === 1 ? gz : map('g * p', { g: gz }, { label: 'matmul.backward', p: alpha });
    if (need[0]) grads[0] = gradA(ga, as, bs, pr, opts.variant);
    if (need[1]) grads[1] = gradB(ga, as, bs, pr, opts.variant);
    let k = 2;
    if (opts.bias) { grads[k] = need[k] ? sumTo(gz, [N]).view(opts.bias.shape) : null; k++; }
    if (opts.residual) grads[k] = need[k] ? g : null;
    return grads;
  });
  pre?.dispose();
  return result;
}

/** d/dA of op(A)·op(B) given dC. */
function gradA(g: Tensor, a: Tensor, b: Tensor, pr: MatmulProblem, variant?: string): Tensor {
  const r = pr.transA
    ? matmul(b, g, { transA: pr.transB, transB: true, variant }) // dAᵀ… = op(B)·dCᵀ
    : matmul(g, b, { transB: !pr.transB, variant }); //            dA = dC·op(B)ᵀ
  return reduceBatch(r, a.shape);
}

function gradB(g: Tensor, a: Tensor, b: Tensor, pr: MatmulProblem, variant?: string): Tensor {
  const r = pr.transB
    ? matmul(g, a, { transA: true, transB: pr.transA, variant }) // dBᵀ = dCᵀ·op(A)
    : matmul(a, g, { transA: !pr.transA, variant }); //             dB = op(A)ᵀ·dC
  return reduceBatch(r, b.shape);
}

/** Gradients of a shared (2-D) operand sum over the batch. */
function reduceBatch(r: Tensor, shape: readonly number[]): Tensor {
  if (r.ndim === shape.length) return r;
  return sumTo(r, shape);
}

/** y = x·Wᵀ + b with PyTorch's Linear layout (W: [out, in]), fused activation/residual. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: { activation?: Activation; residual?: Tensor; variant?: string } = {}): Tensor {
  check(weight.ndim === 2, 'linear', `weight must be [out, in], got ${fmtShape(weight.shape)}`);
  check(x.shape[x.ndim - 1] === weight.shape[1], 'linear', `input ${fmtShape(x.shape)} does not end in ${weight.shape[1]} (weight ${fmtShape(weight.shape)})`);
  return matmul(x, weight, { transB: true, bias: bias ?? undefined, ...opts });
}

// ------------------------------------------------------------------------------------------ the family (kernels/registry.ts)
/** Element (b, i, j) of op(A[b])·op(B[b]) at flat index (b·M + i)·N + j. */
function matmulAt(a: Arr, b: Arr, s: MatmulProblem): (idx: number) => number {
  const { M, N, K } = s;
  return (idx) => {
    const j = idx % N, i = Math.floor(idx / N) % M, bz = Math.floor(idx / (M * N));
    const oa = bz * s.strideA, ob = bz * s.strideB;
    let acc = 0;
    for (let k = 0; k < K; k++) acc += a[oa + (s.transA ? k * M + i : i * K + k)] * b[ob + (s.transB ? j * K + k : k * N + j)];
    return acc;
  };
}

/** A matmul check: the kernel problem plus an optional fused epilogue act(alpha·AB + bias) + residual. */
export type MatmulCase = MatmulProblem & { epilogue?: { act: Activation; alpha: number } };

const mm = (M: number, N: number, K: number, o: Partial<MatmulCase> = {}): MatmulCase => ({ M, N, K, batch: 1, transA: false, transB: false, strideA: 0, strideB: 0, dtA: 'f32', dtB: 'f32', ...o });
const transposes = (M: number, N: number, K: number) => [false, true].flatMap((transA) => [false, true].map((transB) => mm(M, N, K, { transA, transB })));
const ACTIVATION64: Record<Activation, (x: number) => number> = { gelu: gelu64, silu: silu64, relu: (x) => Math.max(x, 0) };

export const matmulFamily: Family<MatmulCase> = {
  name: 'matmul',
  file: 'kernels/matmul.ts',
  variants: Object.fromEntries(MATMUL_VARIANTS.map((v) => [v, v.startsWith('rb')
    ? `register-blocked: ${v.match(/rb(\d+)x(\d+)/)!.slice(1).join(' rows per lane × ')} shared columns${v.includes('g') ? ', shared operand loaded once per subgroup and broadcast' : ''}${/s$/.test(v) ? ', on the transposed problem (lanes along N)' : ''}`
    : v.startsWith('splitk') ? `64×64 tiles over ${v.slice(6)} slices of K, then a reduction` : v === 'tiled' ? '64×64 tiles through workgroup memory' : '128×128 tiles, 8×8 outputs per thread'])),
  choose: chooseMatmulVariant,
  key: problemKey,
  candidates: matmulCandidates,
  unsupported: (v, p) => matmulUnsupported(p, v),
  problems: () => [
    ...transposes(17, 33, 129), // nothing aligned
    ...transposes(33, 36, 68), // the shared operand in whole vec4 rows
    mm(5, 8, 12, { batch: 3, strideA: 60, strideB: 96 }),
    mm(5, 8, 12, { batch: 3, strideA: 60 }), // B shared by the batch
    mm(6, 8, 12, { batch: 3, strideB: 96, transA: true }), // A shared
    mm(19, 36, 24, { transB: true, epilogue: { act: 'gelu', alpha: 0.5 } }),
    mm(20, 12, 23, { transA: true, epilogue: { act: 'silu', alpha: 1.5 } }),
    mm(9, 12, 300, { epilogue: { act: 'relu', alpha: 1 } }), // long K
    mm(1, 1, 1),
    mm(33, 20, 44, { dtA: 'f16', dtB: 'f16' }),
  ],
  describe: (p) => `${p.batch > 1 ? `${p.batch}×` : ''}${p.M}×${p.K}${p.transA ? 'ᵀ' : ''}${p.strideA || p.batch === 1 ? '' : ' (shared)'} · ${p.K}×${p.N}${p.transB ? 'ᵀ' : ''}${p.strideB || p.batch === 1 ? '' : ' (shared)'}${p.epilogue ? ` → ${p.epilogue.act}(${p.epilogue.alpha}·AB + bias) + residual` : ''}${p.dtA === 'f16' ? ' f16' : ''}`,
  inputs: (p, seed) => {
    const shape = (batched: boolean, r: number, c: number) => (batched ? [p.batch, r, c] : [r, c]);
    const aShape = shape(!!p.strideA, p.transA ? p.K : p.M, p.transA ? p.M : p.K);
    const bShape = shape(!!p.strideB, p.transB ? p.N : p.K, p.transB ? p.K : p.N);
    const f16 = (x: HostInput, dt: DType): HostInput => (dt === 'f16' ? { ...x, data: f16Values(x.data as Float32Array), dtype: 'f16', grad: false } : x);
    const ins = [f16(normal(aShape, seed), p.dtA), f16(normal(bShape, seed + 1), p.dtB)];
    if (p.epilogue) ins.push(normal([p.N], seed + 2), normal(p.batch > 1 ? [p.batch, p.M, p.N] : [p.M, p.N], seed + 3));
    // The backward through GELU covers the saved pre-activation; SiLU's and ReLU's derivatives are the
    // elementwise family's (checked there), so those epilogues are checked forward only (compile time).
    return p.epilogue && p.epilogue.act !== 'gelu' ? ins.map((x) => ({ ...x, grad: false })) : ins;
  },
  reference: (p, [a, b, bias, res]) => {
    const at = matmulAt(a, b, p);
    if (!p.epilogue) return [at];
    const { act, alpha } = p.epilogue;
    return [(i: number) => ACTIVATION64[act](alpha * at(i) + bias[i % p.N]) + res[i]];
  },
  run: (p, [a, b, bias, residual], variant?) => [matmul(a, b, { transA: p.transA, transB: p.transB, variant, ...(p.epilogue ? { activation: p.epilogue.act, alpha: p.epilogue.alpha, bias, residual } : {}) })],
  tolerance: (p) => (p.K > 256 ? 1e-5 : 3e-6),
};
