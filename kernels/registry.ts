// The kernel registry: every kernel family, its variants, when each applies on this adapter, a float64
// reference (kernels/reference.ts), an input generator (seeded, never zeros, awkward sizes) and a way to run
// a variant forced. From this one table the tests check every applicable variant forward and backward, the
// kernel benchmark checks each result before timing it, and the autotuner times the alternatives.
//
// A variant is one code path that must be checked: an alternative implementation of the same op (matmul's
// rb4x8g or tiled; these families name the live one with `choose` and are tunable), or, in families
// without alternatives, one kernel of the family or one of the layouts its generator specialises for.
import { gpu } from '../engine/device.js';
import { Tensor, noGrad, scope, keep, fmtShape, numel, type DType } from '../engine/tensor.js';
import { backward } from '../engine/autograd.js';
import { f16ToF32, f32ToF16 } from '../engine/half.js';
import * as R from './reference.js';
import { matmul, MATMUL_VARIANTS, matmulCandidates, matmulUnsupported, chooseMatmulVariant, problemKey, type MatmulProblem, type Activation } from './matmul.js';
import { attention, selfAttention, ATTENTION_VARIANTS, attentionUnsupported, chooseAttention, attentionKey, type AttentionProblem, type AttentionVariant } from './attention.js';
import { adaLNModulate, layerNorm, gatedResidual, ModulationChunk, LAYERNORM_VARIANTS, layerNormUnsupported, chooseLayerNorm, layerNormKey, type LayerNormProblem, type LayerNormVariant } from './layernorm.js';
import { conv2d, upsampleNearest2x, avgPool2x, CONV2D_VARIANTS, conv2dUnsupported, chooseConv2d, convKey, type Conv2dProblem, type Conv2dVariant } from './conv2d.js';
import { groupNorm } from './groupnorm.js';
import { UNARY, BINARY, unary, binary, where, mul, type UnaryOp, type BinaryOp } from './elementwise.js';
import { sum, mean, max, softmax, logSoftmax, mse } from './reduce.js';
import { permute, slice, concat, split, pad2d, patchify, unpatchify } from './shape.js';
import { embedding } from './embedding.js';
import { adamwUpdate, emaUpdate, globalNorm, clipFactor } from './optim.js';
import { rand, randn, cast, philoxUniform, philoxNormal } from './random.js';
import { blendTile } from './blend.js';
import { coefMap, COEF_NAMES } from './diffusion.js';
import { fmaProbe, fmaProbeReference, type FmaProbe } from './probe.js';

// ------------------------------------------------------------------------------------------ the table
/** One input of a problem: shape, values (f16 inputs hold f16-representable values), and whether the backward check differentiates it. */
export interface HostInput { shape: number[]; data: Float32Array | Int32Array; dtype?: DType; grad?: boolean }

/** A float64 reference output: all its values, or a function of the flat index (checked on a sample when large). */
export type RefOutput = Float64Array | ((i: number) => number);

export interface Family<P> {
  name: string;
  /** The kernel source file. */
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
  reference(p: P, x: ArrayLike<number>[]): RefOutput[];
  /** Runs `variant` forced on uploaded inputs, or the automatic choice without one (autograd records when they require grad). */
  run(p: P, x: Tensor[], variant?: string): Tensor[];
  /** Rel-to-max tolerance of the outputs against float64. */
  tolerance(p: P): number;
}

/** Variant descriptions keyed by the names a kernel file exports (both lists must agree). */
function described(names: readonly string[], about: Record<string, string>): Record<string, string> {
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

const normal = (shape: number[], seed: number, scale = 1, grad = true): HostInput => ({ shape, data: randomNormal(numel(shape), seed, scale), grad });
/** Values away from the points where `kinks` make the derivative jump (finite differences straddle none). */
const awayFrom = (x: Float32Array, kinks: number[]): Float32Array => x.map((v) => (kinks.some((k) => Math.abs(v - k) < 0.05) ? v + 0.2 : v));
const f16Values = (x: Float32Array): Float32Array => f16ToF32(f32ToF16(x));

function upload(x: HostInput, grad: boolean): Tensor {
  const t = Tensor.from(x.data, x.shape, x.dtype);
  return grad && x.grad ? t.setRequiresGrad() : t;
}

// ------------------------------------------------------------------------------------------ matmul
/** A matmul check: the kernel problem plus an optional fused epilogue act(alpha·AB + bias) + residual. */
export type MatmulCase = MatmulProblem & { epilogue?: { act: Activation; alpha: number } };

const mm = (M: number, N: number, K: number, o: Partial<MatmulCase> = {}): MatmulCase => ({ M, N, K, batch: 1, transA: false, transB: false, strideA: 0, strideB: 0, dtA: 'f32', dtB: 'f32', ...o });
const transposes = (M: number, N: number, K: number) => [false, true].flatMap((transA) => [false, true].map((transB) => mm(M, N, K, { transA, transB })));
const ACTIVATION64: Record<Activation, (x: number) => number> = { gelu: R.gelu64, silu: R.silu64, relu: (x) => Math.max(x, 0) };

const matmulFamily: Family<MatmulCase> = {
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
    const at = R.matmulAt(a, b, p);
    if (!p.epilogue) return [at];
    const { act, alpha } = p.epilogue;
    return [(i: number) => ACTIVATION64[act](alpha * at(i) + bias[i % p.N]) + res[i]];
  },
  run: (p, [a, b, bias, residual], variant?) => [matmul(a, b, { transA: p.transA, transB: p.transB, variant, ...(p.epilogue ? { activation: p.epilogue.act, alpha: p.epilogue.alpha, bias, residual } : {}) })],
  tolerance: (p) => (p.K > 256 ? 1e-5 : 3e-6),
};

// ------------------------------------------------------------------------------------------ attention
const attn = (B: number, H: number, Tq: number, Tk: number, dh: number, o: Partial<AttentionProblem> = {}): AttentionProblem => ({ B, H, Tq, Tk, dh, packed: false, dtype: 'f32', ...o });

/** q, k, v [B, T, D] of a packed qkv [B, T, 3·D]. */
function unpack(qkv: ArrayLike<number>, B: number, T: number, D: number): Float64Array[] {
  const parts = [0, 1, 2].map(() => new Float64Array(B * T * D));
  for (let r = 0; r < B * T; r++) for (let w = 0; w < 3; w++) for (let c = 0; c < D; c++) parts[w][r * D + c] = qkv[(r * 3 + w) * D + c];
  return parts;
}

const attentionFamily: Family<AttentionProblem> = {
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
    return [R.attentionAt(q, k, v, p.Tq, p.Tk, p.H, p.dh)];
  },
  run: (p, x, variant) => [p.packed ? selfAttention(x[0], p.H, { variant: variant as AttentionVariant }) : attention(x[0], x[1], x[2], p.H, { variant: variant as AttentionVariant })],
  tolerance: () => 3e-6,
};

// ------------------------------------------------------------------------------------------ layernorm
/** A normalisation check; `chunks`: shift and scale read in place as chunks 2 and 0 of one [B, chunks·D] tensor. */
type LayerNormCase = LayerNormProblem & { chunks?: number };
const ln = (mode: LayerNormProblem['mode'], B: number, T: number, D: number, chunks?: number): LayerNormCase => ({ mode, B, T, D, ...(chunks ? { chunks } : {}) });

/** Element i of a [B, T, D] tensor → its per-batch value in chunk `index` of a [B, chunks·D] tensor. */
const chunkIndex = (p: { T: number; D: number }, chunks: number, index: number) => (i: number) => Math.floor(i / (p.T * p.D)) * chunks * p.D + index * p.D + (i % p.D);

const layerNormFamily: Family<LayerNormCase> = {
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
    const n = R.layerNorm64(x, p.D, p.mode === 'modulate' ? 1e-6 : 1e-5);
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

// ------------------------------------------------------------------------------------------ gated residual
/** `chunked`: DiT's half block x + gate·modulate(LN(f), shift, scale), all three chunks 1, 2, 0 of one [B, 3D] tensor (one shared gradient). */
interface GatedProblem { B: number; T: number; D: number; chunked?: boolean }

const gatedFamily: Family<GatedProblem> = {
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
    const n = R.layerNorm64(f, p.D, 1e-6);
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

// ------------------------------------------------------------------------------------------ conv2d
const conv = (B: number, Ci: number, H: number, W: number, Co: number, K: number, stride: number, pad: [number, number, number, number], bias = true): Conv2dProblem => ({ B, Ci, H, W, Co, KH: K, KW: K, stride, pad, bias });

const conv2dFamily: Family<Conv2dProblem> = {
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
  reference: (p, [x, w, b]) => [R.conv2dAt(x, w, b ?? null, p)],
  run: (p, [x, w, b], variant) => [conv2d(x, w, b ?? null, { stride: p.stride, padding: p.pad, variant: variant as Conv2dVariant })],
  tolerance: () => 2e-6,
};

// ------------------------------------------------------------------------------------------ resample
interface ResampleProblem { op: 'upsample2x' | 'avgpool2x'; B: number; C: number; H: number; W: number }

const resampleFamily: Family<ResampleProblem> = {
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

// ------------------------------------------------------------------------------------------ groupnorm
interface GroupNormProblem { B: number; C: number; H: number; W: number; G: number; silu: boolean }

const groupNormFamily: Family<GroupNormProblem> = {
  name: 'groupnorm',
  file: 'kernels/groupnorm.ts',
  variants: { plain: 'GroupNorm with a per-channel affine', silu: 'GroupNorm with SiLU fused after it' },
  unsupported: () => null,
  problems: (v) => [{ B: 2, C: 6, H: 3, W: 5, G: 3 }, { B: 1, C: 8, H: 7, W: 9, G: 2 }, { B: 3, C: 8, H: 1, W: 1, G: 2 }].map((s) => ({ ...s, silu: v === 'silu' })),
  describe: (p) => `[${p.B},${p.C},${p.H},${p.W}] in ${p.G} groups`,
  inputs: (p, seed) => [{ ...normal([p.B, p.C, p.H, p.W], seed, 2), data: randomNormal(p.B * p.C * p.H * p.W, seed, 2).map((v) => v + 1) }, normal([p.C], seed + 1), normal([p.C], seed + 2)],
  reference: (p, [x, w, b]) => {
    const y = R.groupNorm64(x, p.B, p.C, p.H * p.W, p.G, w, b, 1e-6);
    return [p.silu ? y.map(R.silu64) : y];
  },
  run: (p, [x, w, b]) => [groupNorm(x, p.G, w, b, { silu: p.silu })],
  tolerance: () => 3e-6,
};

// ------------------------------------------------------------------------------------------ elementwise
type ElementwiseOp = UnaryOp | BinaryOp | 'where';
export interface ElementwiseProblem { op: ElementwiseOp; shapes: number[][] }

/** Scalars p, q of the parametrised unary ops. */
const P = 0.7, Q = 1.3;
const UNARY64: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x, exp: Math.exp, log: Math.log, sqrt: Math.sqrt, rsqrt: (x) => 1 / Math.sqrt(x), tanh: Math.tanh,
  sigmoid: R.sigmoid64, abs: Math.abs, relu: (x) => Math.max(x, 0), square: (x) => x * x, silu: R.silu64, gelu: R.gelu64,
  scale: (x) => x * P, addScalar: (x) => x + P, powScalar: (x) => x ** P, clamp: (x) => Math.min(Math.max(x, P), Q),
};
const BINARY64: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b, sub: (a, b) => a - b, mul: (a, b) => a * b, div: (a, b) => a / b, pow: (a, b) => a ** b, maximum: Math.max, minimum: Math.min,
};
const POSITIVE = new Set<ElementwiseOp>(['log', 'sqrt', 'rsqrt', 'powScalar', 'pow', 'div']);
const KINKS: Partial<Record<ElementwiseOp, number[]>> = { abs: [0], relu: [0], clamp: [P, Q] };

/** Shapes per layout: the map kernel specialises on vec4 vs scalar lanes and on how each input is indexed. */
const LAYOUTS: Record<string, { about: string; unary?: number[]; binary: number[][] }> = {
  vec4: { about: 'same-shaped inputs, n a multiple of 4: vec4 lanes', unary: [3, 32], binary: [[3, 32], [3, 32]] },
  scalar: { about: 'same-shaped inputs, n odd: scalar lanes', unary: [7, 13], binary: [[7, 13], [7, 13]] },
  suffix: { about: 'an input broadcast along leading axes (i % n indexing)', binary: [[3, 4, 8], [8]] },
  general: { about: 'general broadcasting (strided indexing, scalar lanes)', binary: [[3, 1, 5], [4, 1]] },
  splat: { about: 'a one-element input splat over the other', binary: [[5, 8], [1]] },
};

const elementwiseFamily: Family<ElementwiseProblem> = {
  name: 'elementwise',
  // The op table is kernels/elementwise.ts; the kernel generator (the WGSL) kernels/map.ts.
  file: 'kernels/map.ts',
  variants: Object.fromEntries(Object.entries(LAYOUTS).map(([k, v]) => [k, v.about])),
  unsupported: () => null,
  problems: (v) => {
    const l = LAYOUTS[v];
    const ops: ElementwiseProblem[] = (Object.keys(BINARY) as BinaryOp[]).map((op) => ({ op, shapes: l.binary }));
    ops.push({ op: 'where', shapes: [l.binary[0], ...l.binary] });
    if (l.unary) ops.push(...(Object.keys(UNARY) as UnaryOp[]).map((op) => ({ op, shapes: [l.unary!] })));
    return ops;
  },
  describe: (p) => `${p.op} ${p.shapes.map((s) => fmtShape(s)).join('·')}`,
  inputs: (p, seed) => p.shapes.map((s, k) => {
    if (p.op === 'where' && k === 0) return { shape: s, data: randomUniform(numel(s), seed, 0, 1).map((u) => (u < 0.5 ? 0 : 1)) };
    const data = POSITIVE.has(p.op) ? randomUniform(numel(s), seed + k, 0.3, 2.5) : awayFrom(randomNormal(numel(s), seed + k, 1.5), KINKS[p.op] ?? []);
    return { shape: s, data, grad: true };
  }),
  reference: (p, x) => {
    const { shape, index } = R.broadcastIndex(p.shapes);
    const n = numel(shape);
    if (p.op === 'where') return [Float64Array.from({ length: n }, (_, i) => (x[0][index(0, i)] ? x[1][index(1, i)] : x[2][index(2, i)]))];
    if (p.op in UNARY64) return [Float64Array.from(x[0], UNARY64[p.op as UnaryOp])];
    const f = BINARY64[p.op as BinaryOp];
    return [Float64Array.from({ length: n }, (_, i) => f(x[0][index(0, i)], x[1][index(1, i)]))];
  },
  run: (p, x) => {
    if (p.op === 'where') return [where(x[0], x[1], x[2])];
    if (p.op in UNARY) return [unary(p.op as UnaryOp, x[0], P, Q)];
    return [binary(p.op as BinaryOp, x[0], x[1])];
  },
  tolerance: () => 2e-6,
};

// ------------------------------------------------------------------------------------------ reductions
interface ReduceProblem { op: 'sum' | 'mean' | 'max' | 'mse'; shape: number[]; axes: number[] }

const reduceFamily: Family<ReduceProblem> = {
  name: 'reduce',
  file: 'kernels/reduce.ts',
  variants: {
    'one-pass': 'one lane per output, a loop over the reduced block',
    workgroup: 'long reductions with few outputs (outer·inner < 4096, R > 512), up to 256 values per lane: a workgroup per group of outputs, a tree in shared memory',
    split: 'longer ones: chunk partials first',
  },
  unsupported: () => null,
  problems: (v) => {
    const ops = (shape: number[], axes: number[]): ReduceProblem[] => (['sum', 'mean', 'max'] as const).map((op) => ({ op, shape, axes }));
    if (v === 'split') return [...ops([100000], [0]), ...ops([2, 70000], [1]), ...ops([2, 5000, 20], [1]), { op: 'mse', shape: [70, 1001], axes: [0, 1] }];
    if (v === 'workgroup') return [...ops([3, 5000], [1]), ...ops([2, 1000, 3], [1]), ...ops([2048, 40], [0]), ...ops([777, 10], [0]), { op: 'mse', shape: [60, 1001], axes: [0, 1] }];
    return [...ops([7], [0]), ...ops([3, 17], [1]), ...ops([3, 17], [0]), ...ops([4, 5, 6], [0, 2]), ...ops([2, 3, 4, 5], [1, 2]), { op: 'mse', shape: [5, 10], axes: [0, 1] }];
  },
  describe: (p) => `${p.op} over ${JSON.stringify(p.axes)} of ${fmtShape(p.shape)}`,
  inputs: (p, seed) => (p.op === 'mse' ? [normal(p.shape, seed), normal(p.shape, seed + 1)] : [normal(p.shape, seed)]),
  reference: (p, [x, y]) => {
    if (p.op === 'mse') {
      let s = 0;
      for (let i = 0; i < x.length; i++) s += (x[i] - y[i]) ** 2;
      return [Float64Array.of(s / x.length)];
    }
    const R0 = p.axes.reduce((a, k) => a * p.shape[k], 1);
    const r = p.op === 'max' ? R.reduce64(x, p.shape, p.axes, Math.max, -Infinity) : R.reduce64(x, p.shape, p.axes, (a, v) => a + v, 0);
    return [p.op === 'mean' ? r.map((v) => v / R0) : r];
  },
  run: (p, [x, y]) => [p.op === 'mse' ? mse(x, y) : { sum, mean, max }[p.op](x, p.axes)],
  tolerance: (p) => (numel(p.shape) > 10000 ? 1e-5 : 2e-6),
};

interface SoftmaxProblem { rows: number; n: number; log: boolean }

const softmaxFamily: Family<SoftmaxProblem> = {
  name: 'softmax',
  file: 'kernels/reduce.ts',
  variants: { softmax: 'softmax over the last axis, one lane per row', logSoftmax: 'log-softmax over the last axis' },
  unsupported: () => null,
  problems: (v) => [[5, 33], [3, 4], [2, 1], [7, 257]].map(([rows, n]) => ({ rows, n, log: v === 'logSoftmax' })),
  describe: (p) => `[${p.rows},${p.n}]`,
  inputs: (p, seed) => [normal([p.rows, p.n], seed, 3)],
  reference: (p, [x]) => [R.softmaxRows64(x, p.n, p.log)],
  run: (p, [x]) => [p.log ? logSoftmax(x) : softmax(x)],
  tolerance: () => 2e-6,
};

// ------------------------------------------------------------------------------------------ shape ops
type ShapeProblem =
  | { op: 'permute'; shape: number[]; perm: number[]; dtype: 'f32' | 'i32' }
  | { op: 'slice'; shape: number[]; axis: number; start: number; end: number }
  | { op: 'concat'; shapes: number[][]; axis: number }
  | { op: 'split'; shape: number[]; axis: number; sizes: number[] }
  | { op: 'pad'; shape: number[]; pad: [number, number, number, number] }
  | { op: 'patchify'; shape: number[]; p: number }
  | { op: 'unpatchify'; B: number; g: number; p: number; C: number };

const shapeFamily: Family<ShapeProblem> = {
  name: 'shape',
  file: 'kernels/shape.ts',
  variants: {
    permute: 'permute (numpy.transpose) through the strided copy; f32 and i32',
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
      case 'permute': return p.dtype === 'i32' ? [{ shape: p.shape, data: Int32Array.from({ length: numel(p.shape) }, (_, i) => i * 7 - 40) }] : [normal(p.shape, seed)];
      case 'concat': return p.shapes.map((s, k) => normal(s, seed + k));
      case 'unpatchify': return [normal([p.B, p.g * p.g, p.p * p.p * p.C], seed)];
      default: return [normal(p.shape, seed)];
    }
  },
  reference: (p, x) => {
    switch (p.op) {
      case 'permute': return [R.permute64(x[0], p.shape, p.perm)];
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
      case 'patchify': return [R.patchify64(x[0], p.shape[0], p.shape[1], p.shape[2], p.shape[3], p.p)];
      case 'unpatchify': return [R.unpatchify64(x[0], p.B, p.g, p.p, p.C)];
    }
  },
  run: (p, x) => {
    switch (p.op) {
      case 'permute': return [permute(x[0], p.perm)];
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

// ------------------------------------------------------------------------------------------ embedding
interface EmbeddingProblem { rows: number; D: number; indices: number[]; shape: number[] }

const embeddingFamily: Family<EmbeddingProblem> = {
  name: 'embedding',
  file: 'kernels/embedding.ts',
  variants: { gather: 'rows of a table at integer indices; backward scatter-adds as a gather (no atomics)' },
  unsupported: () => null,
  problems: () => [{ rows: 5, D: 3, indices: [4, 0, 4, 2], shape: [2, 2] }, { rows: 11, D: 7, indices: [10, 3, 3, 3, 0, 9, 10], shape: [7] }],
  describe: (p) => `table [${p.rows},${p.D}] at ${JSON.stringify(p.indices)}`,
  inputs: (p, seed) => [normal([p.rows, p.D], seed), { shape: p.shape, data: Int32Array.from(p.indices) }],
  reference: (p, [w, idx]) => [Float64Array.from({ length: p.indices.length * p.D }, (_, i) => w[idx[Math.floor(i / p.D)] * p.D + (i % p.D)])],
  run: (_p, [w, idx]) => [embedding(w, idx)],
  tolerance: () => 0,
};

// ------------------------------------------------------------------------------------------ optimizer updates
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

const optimFamily: Family<OptimProblem> = {
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

// ------------------------------------------------------------------------------------------ random numbers
interface RandomProblem { op: 'rand' | 'randn' | 'cast-f16'; shape: number[]; seed: number; offset: number }

const randomFamily: Family<RandomProblem> = {
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

// ------------------------------------------------------------------------------------------ tile blending
interface BlendProblem { C: number; th: number; tw: number; B: number; H: number; W: number; b: number; y0: number; x0: number; ramp: [number, number, number, number] }

const blendFamily: Family<BlendProblem> = {
  name: 'blend',
  file: 'kernels/blend.ts',
  variants: { blendTile: "a tile added into the output with linear ramps over its overlaps, and the ramps into the weight sum" },
  unsupported: () => null,
  problems: () => [{ C: 3, th: 6, tw: 7, B: 2, H: 9, W: 11, b: 1, y0: 2, x0: 4, ramp: [2, 0, 3, 1] }, { C: 2, th: 4, tw: 4, B: 1, H: 4, W: 4, b: 0, y0: 0, x0: 0, ramp: [0, 0, 0, 0] }],
  describe: (p) => `tile [${p.C},${p.th},${p.tw}] at (${p.b},${p.y0},${p.x0}) of [${p.B},${p.C},${p.H},${p.W}] ramps [${p.ramp}]`,
  inputs: (p, seed) => [normal([1, p.C, p.th, p.tw], seed, 1, false), normal([p.B, p.C, p.H, p.W], seed + 1, 1, false), normal([p.B, 1, p.H, p.W], seed + 2, 1, false)],
  reference: (p, [tile, out, ws]) => {
    const ramp = (i: number, n: number, lo: number, hi: number) => Math.min(1, lo ? (i + 0.5) / lo : 1, hi ? (n - 1 - i + 0.5) / hi : 1);
    const o = Float64Array.from(out), w = Float64Array.from(ws);
    for (let c = 0; c < p.C; c++) for (let y = 0; y < p.th; y++) for (let x = 0; x < p.tw; x++) {
      const r = ramp(y, p.th, p.ramp[0], p.ramp[1]) * ramp(x, p.tw, p.ramp[2], p.ramp[3]);
      const px = (p.y0 + y) * p.W + p.x0 + x;
      o[(p.b * p.C + c) * p.H * p.W + px] += tile[(c * p.th + y) * p.tw + x] * r;
      if (c === 0) w[p.b * p.H * p.W + px] += r;
    }
    return [o, w];
  },
  run: (p, [tile, out, ws]) => { blendTile(tile, out, ws, p.b, p.y0, p.x0, p.ramp); return [out, ws]; },
  tolerance: () => 1e-6,
};

// ------------------------------------------------------------------------------------------ diffusion
interface DiffusionProblem { op: 'normal_kl' | 'dgll' | 'dgll_dls' | 'coefs'; B: number; n: number }

const DIFFUSION_EXPR: Record<DiffusionProblem['op'], { expr: string; inputs: string[] }> = {
  normal_kl: { expr: 'normal_kl(v0, v1, v2, v3)', inputs: ['v0', 'v1', 'v2', 'v3'] },
  dgll: { expr: 'dgll(v0, v1, v2)', inputs: ['v0', 'v1', 'v2'] },
  dgll_dls: { expr: 'dgll_dls(v0, v1, v2)', inputs: ['v0', 'v1', 'v2'] },
  coefs: { expr: 'c1 * v0 + c2 * v1 + sa * lv1 - abp', inputs: ['v0', 'v1'] },
};

const diffusionFamily: Family<DiffusionProblem> = {
  name: 'diffusion',
  file: 'kernels/diffusion.ts',
  variants: {
    normal_kl: 'the Gaussian KL (coefMap with the diffusion WGSL)',
    dgll: 'the discretized Gaussian log-likelihood',
    dgll_dls: 'its derivative in the log-scale',
    coefs: 'an expression of the per-sample schedule coefficients',
  },
  unsupported: () => null,
  problems: (v) => [{ op: v as DiffusionProblem['op'], B: 3, n: 37 }],
  describe: (p) => `${p.op} [${p.B},${p.n}]`,
  inputs: (p, seed) => {
    const names = DIFFUSION_EXPR[p.op].inputs;
    const shape = [p.B, p.n];
    const n = p.B * p.n;
    // dgll: x spans [−1, 1] with both edge bins, the mean near x and a log-scale as the diffusion's (where the
    // likelihood is not saturated: in its far tails f32 cannot resolve the difference of two CDF values).
    const x = randomUniform(n, seed, -1, 1).map((v, i) => (i % 11 === 0 ? -1 : i % 13 === 0 ? 1 : v));
    const xs: HostInput[] = p.op.startsWith('dgll')
      ? [{ shape, data: x }, { shape, data: randomNormal(n, seed + 1, 0.01).map((d, i) => x[i] + d) }, { shape, data: randomUniform(n, seed + 2, -3, -1) }]
      : names.map((_, k) => ({ shape, data: randomNormal(n, seed + k, 0.8) }));
    return [...xs, { shape: [p.B, COEF_NAMES.length], data: randomNormal(p.B * COEF_NAMES.length, seed + 9) }];
  },
  reference: (p, x) => {
    const n = p.B * p.n;
    const coef = (name: string, i: number) => x[x.length - 1][Math.floor(i / p.n) * COEF_NAMES.length + COEF_NAMES.indexOf(name)];
    const [a, b, c, d] = x;
    const h = 1e-6;
    const f: Record<DiffusionProblem['op'], (i: number) => number> = {
      normal_kl: (i) => R.normalKl64(a[i], b[i], c[i], d[i]),
      dgll: (i) => R.dgll64(a[i], b[i], c[i]),
      // Central differences in float64 (zero where a 1e-12 clamp is active, as the kernel).
      dgll_dls: (i) => (R.dgll64(a[i], b[i], c[i] + h) - R.dgll64(a[i], b[i], c[i] - h)) / (2 * h),
      coefs: (i) => coef('c1', i) * a[i] + coef('c2', i) * b[i] + coef('sa', i) * coef('lv1', i) - coef('abp', i),
    };
    return [Float64Array.from({ length: n }, (_, i) => f[p.op](i))];
  },
  run: (p, x) => {
    const names = DIFFUSION_EXPR[p.op].inputs;
    return [coefMap(DIFFUSION_EXPR[p.op].expr, Object.fromEntries(names.map((nm, k) => [nm, x[k]])), x[x.length - 1], `diffusion.${p.op}`)];
  },
  // dgll: a difference of two nearby CDF values in f32.
  tolerance: (p) => (p.op.startsWith('dgll') ? 2e-5 : 2e-6),
};

// ------------------------------------------------------------------------------------------ probe
const probeFamily: Family<FmaProbe> = {
  name: 'probe',
  file: 'kernels/probe.ts',
  variants: { fma: 'register-only vec4 FMAs: the arithmetic ceiling the benchmarks report' },
  unsupported: () => null,
  problems: () => [{ workgroups: 3, iters: 7, m: 0.999, c: 1e-4 }],
  describe: (p) => `${p.workgroups} workgroups × ${p.iters} iterations`,
  inputs: () => [],
  reference: (p) => [(lane: number) => fmaProbeReference(p, lane)],
  run: (p) => { const out = Tensor.empty([p.workgroups * 64]); fmaProbe(out, p); return [out]; },
  // f32 rounding over the chain of FMAs.
  tolerance: () => 1e-5,
};

/** Every kernel family (the tests check that each kernel file with WGSL appears here). */
export const FAMILIES: Family<unknown>[] = [
  matmulFamily, attentionFamily, layerNormFamily, gatedFamily, conv2dFamily, resampleFamily, groupNormFamily,
  elementwiseFamily, reduceFamily, softmaxFamily, shapeFamily, embeddingFamily, optimFamily, randomFamily,
  blendFamily, diffusionFamily, probeFamily,
] as unknown as Family<unknown>[];

export function family(name: string): Family<unknown> {
  const f = FAMILIES.find((x) => x.name === name);
  if (!f) throw new Error(`no kernel family '${name}' (registered: ${FAMILIES.map((x) => x.name).join(', ')})`);
  return f;
}

// ------------------------------------------------------------------------------------------ checking
/** max|got − ref| / max|ref| ("rel-to-max"), NaN-aware. */
export function relErr(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (got.length !== ref.length) return Infinity;
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i] - ref[i]);
    if (!(d <= num)) num = Number.isNaN(d) ? Infinity : Math.max(num, d);
    den = Math.max(den, Math.abs(ref[i]));
  }
  return den === 0 ? num : num / den;
}

/** Outputs with more elements than this, whose reference is an element function, are checked on a sample. */
const FULL_CHECK = 1 << 16;

/** Indices compared for an output of n elements: all, or an even spread plus both ends. */
function sampledIndices(n: number): number[] {
  if (n <= FULL_CHECK) return Array.from({ length: n }, (_, i) => i);
  const step = n / 4096;
  const idx = new Set<number>();
  for (let k = 0; k < 4096; k++) idx.add(Math.floor(k * step + (k * 7919) % Math.max(1, Math.floor(step))));
  for (let k = 0; k < 64; k++) { idx.add(k); idx.add(n - 1 - k); }
  return [...idx].filter((i) => i >= 0 && i < n).sort((a, b) => a - b);
}

/** Rel-to-max error of an output against its reference (every element, or a sample of a large function reference). */
export function outputError(got: ArrayLike<number>, ref: RefOutput): { error: number; checked: number } {
  if (ref instanceof Float64Array) return { error: relErr(got, ref), checked: ref.length };
  const idx = sampledIndices(got.length);
  return { error: relErr(idx.map((i) => got[i]), idx.map(ref)), checked: idx.length };
}

/** Every value of a reference output. */
const values = (ref: RefOutput, n: number): Float64Array => (ref instanceof Float64Array ? ref : Float64Array.from({ length: n }, (_, i) => ref(i)));

/** A problem's inputs on the host and on the GPU (kept: the caller disposes them with `dispose`). */
export interface Prepared { host: HostInput[]; tensors: Tensor[]; dispose(): void }

export function prepare<P>(f: Family<P>, p: P, seed = 1, grad = false): Prepared {
  const host = f.inputs(p, seed);
  const tensors = host.map((x) => keep(upload(x, grad)));
  return { host, tensors, dispose: () => tensors.forEach((t) => t.dispose()) };
}

/** Runs `variant` forced (the automatic choice when undefined) on prepared inputs and reads its outputs back (no autograd). */
export async function runForced<P>(f: Family<P>, p: P, variant: string | undefined, x: Prepared): Promise<Float32Array[]> {
  const outs = scope(() => noGrad(() => f.run(p, x.tensors, variant).map((t) => (x.tensors.includes(t) ? t : keep(t)))));
  const data = await Promise.all(outs.map((t) => t.data()));
  for (const t of outs) if (!x.tensors.includes(t)) t.dispose();
  return data.map((d) => (d instanceof Float32Array ? d : Float32Array.from(d)));
}

/** The worst rel-to-max error of `variant`'s outputs against float64 (fresh inputs: in-place kernels change theirs). */
export async function forwardError<P>(f: Family<P>, p: P, variant: string, seed = 1): Promise<{ error: number; output: number }> {
  const x = prepare(f, p, seed);
  try {
    const got = await runForced(f, p, variant, x);
    const refs = f.reference(p, x.host.map((h) => h.data));
    // relErr reads NaN as Infinity, so the maximum is well defined.
    const errors = got.map((g, k) => outputError(g, refs[k]).error);
    const error = Math.max(...errors);
    return { error, output: errors.indexOf(error) };
  } finally {
    x.dispose();
  }
}

/**
 * The worst gradient error of `variant` against float64 finite differences of the reference: L = Σ out·w
 * (w random) is backpropagated on the GPU, and for each differentiable input its gradient is compared with
 * (L(x + h·e) − L(x − h·e)) / 2h at sampled coordinates (rel-to-max) and along one random direction over
 * every coordinate (relative to Σ|g·v|). Null when the problem has no differentiable input.
 */
export async function gradientError<P>(f: Family<P>, p: P, variant: string, seed = 1): Promise<{ error: number; input: number } | null> {
  const host = f.inputs(p, seed);
  if (!host.some((x) => x.grad)) return null;
  const leaves = host.map((x) => upload(x, true));
  const sizes: number[] = [];
  const ws: Float32Array[] = [];
  const loss = scope(() => {
    const outs = f.run(p, leaves, variant);
    let l: Tensor | null = null;
    outs.forEach((o, k) => {
      sizes.push(o.size);
      ws.push(randomNormal(o.size, seed + 100 + k));
      const term = sum(mul(o, Tensor.from(ws[k], o.shape)));
      l = l ? binary('add', l, term) : term;
    });
    return l!;
  });
  backward(loss);
  loss.dispose();
  const grads = await Promise.all(leaves.map(async (t, k) => (host[k].grad && t.grad ? (await t.grad.data()) as Float32Array : null)));
  leaves.forEach((t) => t.dispose());
  const x64 = host.map((x) => Float64Array.from(x.data));
  const lossAt = (xs: Float64Array[]) => f.reference(p, xs).reduce((s, r, k) => { const v = values(r, sizes[k]); let acc = 0; for (let i = 0; i < v.length; i++) acc += v[i] * ws[k][i]; return s + acc; }, 0);
  const h = 1e-6;
  let worst = { error: 0, input: -1 };
  for (let k = 0; k < host.length; k++) {
    if (!host[k].grad) continue;
    const g = grads[k];
    if (!g) return { error: Infinity, input: k };
    const at = (dir: (i: number) => number) => {
      const plus = x64.map((x, j) => (j === k ? x.map((v, i) => v + h * dir(i)) : x)), minus = x64.map((x, j) => (j === k ? x.map((v, i) => v - h * dir(i)) : x));
      return (lossAt(plus) - lossAt(minus)) / (2 * h);
    };
    const n = g.length;
    const coords = [...new Set(Array.from(randomUniform(Math.min(12, n), seed + 7 + k, 0, n), Math.floor))];
    const fd = coords.map((c) => at((i) => (i === c ? 1 : 0)));
    const scale = Math.max(...fd.map(Math.abs), ...coords.map((c) => Math.abs(g[c])), 1e-30);
    let error = Math.max(...coords.map((c, j) => Math.abs(g[c] - fd[j]))) / scale;
    const v = randomNormal(n, seed + 200 + k);
    const along = at((i) => v[i]);
    let dot = 0, mag = 0;
    for (let i = 0; i < n; i++) { dot += g[i] * v[i]; mag += Math.abs(g[i] * v[i]); }
    if (mag > 0 || along !== 0) error = Math.max(error, Math.abs(dot - along) / Math.max(mag, Math.abs(along)));
    if (Number.isNaN(error)) error = Infinity;
    if (!(error <= worst.error)) worst = { error, input: k };
  }
  return worst;
}

/** Gradient tolerance (f32 backward against float64 finite differences). */
export const GRADIENT_TOLERANCE = 1e-4;

/** What checking one variant found: problems run, problems not run here (with why), and failures. */
export interface VariantCheck { ran: number; notRun: string[]; failures: string[] }

/**
 * Checks `variant` of family `f` on every problem the adapter supports: outputs against float64 within the
 * family's tolerance, gradients against finite differences (the Node suite and the browser page run this).
 */
export async function checkVariant<P>(f: Family<P>, variant: string): Promise<VariantCheck> {
  const r: VariantCheck = { ran: 0, notRun: [], failures: [] };
  for (const p of f.problems(variant)) {
    const why = f.unsupported(variant, p);
    if (why) { r.notRun.push(`${f.describe(p)}: ${why}`); continue; }
    r.ran++;
    try {
      const fw = await forwardError(f, p, variant);
      if (!(fw.error <= f.tolerance(p))) r.failures.push(`${f.describe(p)}: output ${fw.output} has rel-to-max error ${fw.error.toExponential(2)} over ${f.tolerance(p)}`);
      const bw = await gradientError(f, p, variant);
      if (bw && !(bw.error <= GRADIENT_TOLERANCE)) r.failures.push(`${f.describe(p)}: the gradient of input ${bw.input} is off by ${bw.error.toExponential(2)} (tolerance ${GRADIENT_TOLERANCE})`);
    } catch (e) {
      r.failures.push(`${f.describe(p)}: ${(e as Error).message}`);
    }
  }
  return r;
}
