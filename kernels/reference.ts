// What every kernel family's check is made of, shared by the kernel files (each holds its own family and
// float64 reference beside its kernels, as llm.c keeps the CPU reference beside the kernel) and by the harness
// in kernels/registry.ts: the `Family` type, seeded inputs from the Philox stream on the CPU (also the random
// kernels' reference, and host-side draws), and the float64 activations several references use.
import { numel, type DType, type Tensor } from '../engine/tensor.js';
import { f16ToF32, f32ToF16 } from '../engine/half.js';

export type Arr = ArrayLike<number>;

// ------------------------------------------------------------------------------------------ the family
/** One input of a problem: shape, values (f16 inputs hold f16-representable values), and whether the backward check differentiates it. */
export interface HostInput { shape: number[]; data: Float32Array | Int32Array; dtype?: DType; grad?: boolean }

/** A float64 reference output: all its values, or a function of the flat index (checked on a sample when large). */
export type RefOutput = Float64Array | ((i: number) => number);

export interface Family<P> {
  name: string;
  /** The kernel source file (its WGSL). */
  file: string;
  /** Variant name → what it is. */
  variants: Record<string, string>;
  /** Families with alternatives: the variant the automatic choice takes for `p` (tuned, else the default). */
  choose?: (p: P) => string;
  /** Families with alternatives: the tuning-table key of a problem, and the variants worth timing. */
  key?: (p: P) => string;
  candidates?: (p: P) => string[];
  /** Why `variant` cannot run `p` on this adapter; null when it can. */
  unsupported(variant: string, p: P): string | null;
  /** Small awkward problems that exercise `variant` (tests). */
  problems(variant: string): P[];
  describe(p: P): string;
  inputs(p: P, seed: number): HostInput[];
  reference(p: P, x: Arr[]): RefOutput[];
  /** Runs `variant` forced on uploaded inputs, or the automatic choice without one (autograd records when they require grad). */
  run(p: P, x: Tensor[], variant?: string): Tensor[];
  /** Rel-to-max tolerance of the outputs against float64. */
  tolerance(p: P): number;
}

/** Variant descriptions keyed by the names a kernel file exports (both lists must agree). */
export function described(names: readonly string[], about: Record<string, string>): Record<string, string> {
  const missing = names.filter((n) => !(n in about)), extra = Object.keys(about).filter((n) => !names.includes(n));
  if (missing.length || extra.length) throw new Error(`registry: variants ${JSON.stringify(names)} vs descriptions ${JSON.stringify(Object.keys(about))}`);
  return Object.fromEntries(names.map((n) => [n, about[n]]));
}

// ------------------------------------------------------------------------------------------ inputs
/** Seeded normal values (the Philox stream) times `scale`, never exactly zero. */
export function randomNormal(n: number, seed: number, scale = 1): Float32Array {
  return Float32Array.from(philoxNormal(n, seed), (v) => scale * v || 1e-3);
}

/** Seeded uniform values in [lo, hi). */
export function randomUniform(n: number, seed: number, lo: number, hi: number): Float32Array {
  return Float32Array.from(philoxUniform(n, seed), (u) => lo + (hi - lo) * u);
}

/** A seeded normal input of `shape` (differentiated unless `grad` is false). */
export const normal = (shape: number[], seed: number, scale = 1, grad = true): HostInput => ({ shape, data: randomNormal(numel(shape), seed, scale), grad });
/** Values away from the points where `kinks` make the derivative jump (finite differences straddle none). */
export const awayFrom = (x: Float32Array, kinks: number[]): Float32Array => x.map((v) => (kinks.some((k) => Math.abs(v - k) < 0.05) ? v + 0.2 : v));
/** The nearest f16 values. */
export const f16Values = (x: Float32Array): Float32Array => f16ToF32(f32ToF16(x));

// ------------------------------------------------------------------------------------------ float64 activations
export const sigmoid64 = (x: number) => 1 / (1 + Math.exp(-x));
export const gelu64 = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
export const silu64 = (x: number) => x * sigmoid64(x);

// ------------------------------------------------------------------------------------------ Philox on the CPU
/** The high 32 bits of a 32×32-bit product, from 16-bit halves (exact in doubles, as the WGSL mulhi). */
function mulhi(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const p01 = a0 * b1, p10 = a1 * b0;
  const mid = ((a0 * b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  return (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) >>> 0;
}

/** Philox4x32-10 of counter `ctr` and key `key`, as the WGSL `philox` (kernels/random.ts). */
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
