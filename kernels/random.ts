// Counter-based random numbers (Philox4x32-10): element i of a draw with (seed, offset) is a pure function of
// (seed, offset + i), so results are reproducible across runs, adapters and batch splits. A CPU twin gives
// the same bits for tests and for host-side draws.
import { gpu } from '../engine/device.js';
import { Tensor, check, numel, type DType, type Shape } from '../engine/tensor.js';
import { uniforms, grid, gridArgs, launch, linearIndex } from './util.js';

const PHILOX_WGSL = /* wgsl */`
fn mulhi(a: u32, b: u32) -> u32 {
  let a0 = a & 0xffffu; let a1 = a >> 16u; let b0 = b & 0xffffu; let b1 = b >> 16u;
  let p00 = a0 * b0; let p01 = a0 * b1; let p10 = a1 * b0; let p11 = a1 * b1;
  let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  return p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
}
fn philox(ctr: vec4u, key: vec2u) -> vec4u {
  var c = ctr; var k = key;
  for (var r = 0u; r < 10u; r++) {
    let hi0 = mulhi(0xD2511F53u, c.x); let lo0 = 0xD2511F53u * c.x;
    let hi1 = mulhi(0xCD9E8D57u, c.z); let lo1 = 0xCD9E8D57u * c.z;
    c = vec4u(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    k = k + vec2u(0x9E3779B9u, 0xBB67AE85u);
  }
  return c;
}`;

/** n draws; the 64-bit seed and offset as two words each. */
const DrawUniforms = uniforms({ n: 'u32', seedLo: 'u32', seedHi: 'u32', offset: 'u32', offsetHi: 'u32' });
const randKernel = (normal: boolean) => /* wgsl */`
${DrawUniforms.wgsl}
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
${PHILOX_WGSL}
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.n) { return; }
  let idx = u.offset + i;
  let carry = select(0u, 1u, idx < i);
  let r = philox(vec4u(idx, u.offsetHi + carry, 0u, 0u), vec2u(u.seedLo, u.seedHi));
  ${normal
    ? `let u1 = (f32(r.x >> 8u) + 1.0) * 5.9604644775390625e-8;
  let u2 = f32(r.y >> 8u) * 5.9604644775390625e-8;
  out[i] = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);`
    : 'out[i] = f32(r.x >> 8u) * 5.9604644775390625e-8;'}
}`;

function draw(normal: boolean, shape: Shape, seed: number, offset: number): Tensor {
  check(Number.isInteger(seed) && seed >= 0, normal ? 'randn' : 'rand', `seed must be a non-negative integer, got ${seed}`);
  const n = numel(shape);
  const t = Tensor.empty(shape, 'f32', normal ? 'randn' : 'rand');
  if (n) {
    const p = DrawUniforms.pack({ n, seedLo: seed >>> 0, seedHi: Math.floor(seed / 2 ** 32) >>> 0, offset: offset >>> 0, offsetHi: Math.floor(offset / 2 ** 32) >>> 0 });
    launch(normal ? 'randn' : 'rand', randKernel(normal), [t], grid(n, 64), p);
  }
  return t;
}

/** Uniform [0, 1) of `shape` from (seed, offset). */
export function rand(shape: Shape, seed: number, offset = 0): Tensor {
  return draw(false, shape, seed, offset);
}

/** Standard normal of `shape` from (seed, offset) (Box–Muller on Philox), optionally stored as f16. */
export function randn(shape: Shape, seed: number, dtype: DType = 'f32', offset = 0): Tensor {
  const t = draw(true, shape, seed, offset);
  if (dtype === 'f32') return t;
  const c = cast(t, dtype);
  t.dispose();
  return c;
}

/** A seeded stream: successive draws continue the counter, so each draw differs and all are reproducible. */
export class Generator {
  offset = 0;
  constructor(readonly seed: number) {}
  rand(shape: Shape): Tensor { const t = rand(shape, this.seed, this.offset); this.offset += numel(shape); return t; }
  randn(shape: Shape): Tensor { const t = randn(shape, this.seed, 'f32', this.offset); this.offset += numel(shape); return t; }
  /** Uniform draws on the CPU (the same Philox stream), e.g. for label dropout or timesteps. */
  randHost(n: number): Float64Array { const r = philoxUniform(n, this.seed, this.offset); this.offset += n; return r; }
}

// ------------------------------------------------------------------------------------------ CPU twin
/** The high 32 bits of a 32×32-bit product, from 16-bit halves (exact in doubles, as the WGSL mulhi). */
function mulhi(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const p01 = a0 * b1, p10 = a1 * b0;
  const mid = ((a0 * b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  return (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) >>> 0;
}

export function philoxHost(ctr: [number, number, number, number], key: [number, number]): [number, number, number, number] {
  let [c0, c1, c2, c3] = ctr;
  let [k0, k1] = key;
  for (let r = 0; r < 10; r++) {
    const hi0 = mulhi(0xd2511f53, c0), lo0 = Math.imul(0xd2511f53, c0) >>> 0;
    const hi1 = mulhi(0xcd9e8d57, c2), lo1 = Math.imul(0xcd9e8d57, c2) >>> 0;
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
    k0 = (k0 + 0x9e3779b9) >>> 0;
    k1 = (k1 + 0xbb67ae85) >>> 0;
  }
  return [c0, c1, c2, c3];
}

/** The Philox words the draws of (seed, offset + i) start from. */
function philoxAt(i: number, seed: number, offset: number): [number, number, number, number] {
  const idx = offset + i;
  return philoxHost([idx >>> 0, Math.floor(idx / 2 ** 32) >>> 0, 0, 0], [seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0]);
}

/** The same uniform values as `rand` (as doubles of the f32 results). */
export function philoxUniform(n: number, seed: number, offset = 0): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (philoxAt(i, seed, offset)[0] >>> 8) * 2 ** -24;
  return out;
}

/** What `randn` computes, in float64 (the GPU rounds each step to f32). */
export function philoxNormal(n: number, seed: number, offset = 0): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const r = philoxAt(i, seed, offset);
    const u1 = ((r[0] >>> 8) + 1) * 2 ** -24, u2 = (r[1] >>> 8) * 2 ** -24;
    out[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  return out;
}

// ------------------------------------------------------------------------------------------ casts
const CastUniforms = uniforms({ n: 'u32' });
const castKernel = (from: DType, to: DType) => /* wgsl */`
enable f16;
${CastUniforms.wgsl}
@group(0) @binding(1) var<storage, read> x: array<${from}>;
@group(0) @binding(2) var<storage, read_write> y: array<${to}>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.n) { return; }
  y[i] = ${to}(x[i]);
}`;

/** Converts between f32 and f16 storage (f16 needs shader-f16). */
export function cast(x: Tensor, dtype: DType): Tensor {
  check(x.dtype !== 'i32' && dtype !== 'i32', 'cast', `only f32 ↔ f16 (got ${x.dtype} → ${dtype})`);
  check(gpu().hasF16, 'cast', 'f16 storage needs the shader-f16 feature, which this adapter lacks');
  const y = Tensor.empty(x.shape, dtype, 'cast');
  launch('cast', castKernel(x.dtype, dtype), [x, y], grid(x.size, 64), CastUniforms.pack({ n: x.size }));
  return y;
}
