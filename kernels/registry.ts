// The kernel registry: the list of every kernel family, and the harness that checks them. Each kernel file
// holds its family beside its kernels: its variants, when each applies on this adapter, a float64 reference,
// an input generator (seeded, never zeros, awkward sizes) and a way to run a variant forced; the pieces they
// share (the `Family` type, seeded inputs, float64 activations) are kernels/reference.ts. From this one list
// the tests check every applicable variant forward and backward, the kernel benchmark checks each result
// before timing it, and the autotuner times the alternatives.
//
// A variant is one code path that must be checked: an alternative implementation of the same op (matmul's
// rb4x8g or tiled; these families name the live one with `choose` and are tunable), or, in families
// without alternatives, one kernel of the family or one of the layouts its generator specialises for.
import { Tensor, noGrad, scope, keep } from '../engine/tensor.js';
import { backward } from '../engine/autograd.js';
import { randomNormal, randomUniform, type Family, type HostInput, type RefOutput } from './reference.js';
import { matmulFamily } from './matmul.js';
import { attentionFamily } from './attention.js';
import { layerNormFamily, gatedFamily } from './layernorm.js';
import { conv2dFamily, resampleFamily } from './conv2d.js';
import { groupNormFamily } from './groupnorm.js';
import { elementwiseFamily, binary, mul } from './elementwise.js';
import { reduceFamily, softmaxFamily, sum } from './reduce.js';
import { shapeFamily } from './shape.js';
import { embeddingFamily } from './embedding.js';
import { optimFamily } from './optim.js';
import { randomFamily } from './random.js';
import { blendFamily } from './blend.js';
import { diffusionFamily } from './diffusion.js';
import { probeFamily } from './probe.js';
import { cosineFamily } from './cosine.js';

export { randomNormal, randomUniform, type Family, type HostInput, type RefOutput } from './reference.js';

/** Every kernel family (the tests check that each kernel file with WGSL appears here). */
export const FAMILIES: Family<unknown>[] = [
  matmulFamily, attentionFamily, layerNormFamily, gatedFamily, conv2dFamily, resampleFamily, groupNormFamily,
  elementwiseFamily, reduceFamily, softmaxFamily, shapeFamily, embeddingFamily, optimFamily, randomFamily,
  blendFamily, diffusionFamily, probeFamily, cosineFamily,
] as unknown as Family<unknown>[];

export function family(name: string): Family<unknown> {
  const f = FAMILIES.find((x) => x.name === name);
  if (!f) throw new Error(`no kernel family '${name}' (registered: ${FAMILIES.map((x) => x.name).join(', ')})`);
  return f;
}

// ------------------------------------------------------------------------------------------ checking
function upload(x: HostInput, grad: boolean): Tensor {
  const t = Tensor.from(x.data, x.shape, x.dtype);
  return grad && x.grad ? t.setRequiresGrad() : t;
}

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
