// Counter-based random numbers (Philox4x32-10): element i of a draw with (seed, offset) is a pure function of
// (seed, offset + i), so results are reproducible across runs, adapters and batch splits. Its CPU twin
// (kernels/reference.ts) gives the same bits for tests and for host-side draws.
import { gpu } from '../engine/device.js';
import { Tensor, check, numel, fmtShape, type DType, type Shape } from '../engine/tensor.js';
import { f16ToF32, f32ToF16 } from '../engine/half.js';
import { uniforms, grid, gridArgs, launch, linearIndex } from './util.js';
import { randomNormal, philoxUniform, philoxNormal, type Family } from './reference.js';

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

/**
 * Seeds derived from a run's seed, one per role: the project's one derivation, so that no two streams of a
 * run coincide by accident. A seed's own stream initialises models (DiT, VAE, classifier) and draws the
 * sampling loop's per-step noise. The roles below predate this rule and keep their fixed offsets, because
 * shipped weights and committed numbers were made with them; every other role hashes its name into the seed
 * (FNV-1a), as a DiT training run's streams `noise`, `timesteps`, `order` and `labelDrop` do (checkpoints
 * store those seeds).
 */
const SEED_OFFSETS = {
  /** A DiT's own label-dropout stream (a training run replaces it by its `labelDrop`). */
  'dit.labelDrop': 1,
  /** The N(0, 0.02²) init of a DiT's timestep MLP. */
  'dit.timestepMlp': 1001,
  /** `generate`'s starting latents z (the loop's per-step noise is the seed's own stream). */
  'sample.latents': 0x5eed,
  /** trainVae's data order and flips (its posterior noise is the seed's own stream). */
  'vae.order': 1, 'vae.flip': 2,
  /** trainClassifier's data order and flips (the judges were trained with these). */
  'classifier.order': 11, 'classifier.flip': 12,
} as const;

export type SeedRole = keyof typeof SEED_OFFSETS | 'noise' | 'timesteps' | 'order' | 'labelDrop' | 'alignProjector' | 'vae.equivariance';

/** The seed of `role` derived from `seed` (see SEED_OFFSETS). */
export function deriveSeed(seed: number, role: SeedRole): number {
  if (role in SEED_OFFSETS) return seed + SEED_OFFSETS[role as keyof typeof SEED_OFFSETS];
  let h = (seed >>> 0) ^ 0x9e3779b9;
  for (const ch of role) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h;
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

// ------------------------------------------------------------------------------------------ the family (kernels/registry.ts)
interface RandomProblem { op: 'rand' | 'randn' | 'cast-f16'; shape: number[]; seed: number; offset: number }

export const randomFamily: Family<RandomProblem> = {
  name: 'random',
  file: 'kernels/random.ts',
  variants: { rand: 'Philox4x32-10 uniform [0, 1)', randn: 'Philox normal (Box–Muller)', 'cast-f16': 'f32 → f16 storage → f32' },
  unsupported: (v) => (v === 'cast-f16' && !gpu().hasF16 ? 'f16 storage needs shader-f16, which this adapter lacks' : null),
  problems: (v) => [{ op: v as RandomProblem['op'], shape: [1031], seed: 42, offset: 0 }, { op: v as RandomProblem['op'], shape: [3, 7], seed: 2 ** 33 + 5, offset: 2 ** 32 - 9 }],
  describe: (p) => `${p.op} ${fmtShape(p.shape)}${p.op === 'cast-f16' ? '' : ` seed ${p.seed} offset ${p.offset}`}`,
  // Values over f16's range, its subnormals included.
  inputs: (p, seed) => (p.op === 'cast-f16' ? [{ shape: p.shape, data: randomNormal(numel(p.shape), seed).map((v, i) => v * 10 ** ((i % 9) - 6)) }] : []),
  reference: (p, x) => {
    if (p.op === 'cast-f16') return [Float64Array.from(f16ToF32(f32ToF16(Float32Array.from(x[0]))))];
    const n = numel(p.shape);
    return [p.op === 'rand' ? philoxUniform(n, p.seed, p.offset) : philoxNormal(n, p.seed, p.offset)];
  },
  run: (p, x) => {
    if (p.op === 'rand') return [rand(p.shape, p.seed, p.offset)];
    if (p.op === 'randn') return [randn(p.shape, p.seed, 'f32', p.offset)];
    const h = cast(x[0], 'f16');
    const y = cast(h, 'f32');
    h.dispose();
    return [y];
  },
  // randn (Box–Muller, r·cos θ with r = √(−2 log u1) ≤ 6): WGSL only promises cos/sin to an absolute 2⁻¹¹ on
  // [−π, π] and log to 3 ULP, so an output may be off by r·2⁻¹¹ ≈ 3e-3, about 1e-3 of the largest |z| of a
  // thousand draws. SwiftShader's approximations reach 1.6e-4 (lavapipe's stay under 2e-5).
  tolerance: (p) => (p.op === 'randn' ? 1e-3 : 0),
};
