// Test helpers: one device for the suite (outputs poisoned with NaN), seeded host data, error measures,
// and a finite-difference gradient checker that goes through the engine's autograd.
import { expect } from 'chai';
import { fileURLToPath } from 'node:url';
import { getDevice, type Gpu } from '../engine/device.js';
import { Tensor, noGrad, scope } from '../engine/tensor.js';
import { backward } from '../engine/autograd.js';
import { mul } from '../kernels/elementwise.js';
import { sum } from '../kernels/reduce.js';
import { mulberry32 } from '../data/synthetic.js';

let dev: Gpu | null = null;

export async function device(): Promise<Gpu> {
  if (!dev) {
    dev = await getDevice();
    dev.poison = true;
  }
  return dev;
}

/** Deterministic uniform [0,1) stream. */
export const rng = mulberry32;

/** Normal(0, scale²) values (Box–Muller), never exactly zero. */
export function randArray(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u1 = r() || 1e-9, u2 = r();
    out[i] = scale * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2) || 1e-3;
  }
  return out;
}

export function uniformArray(n: number, seed: number, lo: number, hi: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** max|got − ref| / max|ref| ("rel-to-max"), NaN-aware. */
export function relErr(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  expect(got.length, 'length').to.equal(ref.length);
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i] - ref[i]);
    if (!(d <= num)) num = Number.isNaN(d) ? Infinity : Math.max(num, d);
    den = Math.max(den, Math.abs(ref[i]));
  }
  return den === 0 ? num : num / den;
}

export function expectClose(got: ArrayLike<number>, ref: ArrayLike<number>, tol: number, what = ''): number {
  const e = relErr(got, ref);
  expect(e, `${what}: rel-to-max error ${e.toExponential(2)} over ${tol}`).to.be.at.most(tol);
  return e;
}

export function t(data: Float32Array | number[], shape: number[], requiresGrad = false): Tensor {
  const x = Tensor.from(data instanceof Float32Array ? data : Float32Array.from(data), shape);
  return requiresGrad ? x.setRequiresGrad() : x;
}

export async function read(x: Tensor): Promise<Float32Array> {
  return (await x.data()) as Float32Array;
}

export interface GradCheckOptions { eps?: number; tol?: number; samples?: number; seed?: number }

/**
 * Compares autograd gradients of L = Σ f(inputs)·w (w random) with central finite differences at a few
 * sampled coordinates of every input. Uses f32 on the GPU, so eps and tol are loose by design.
 */
export async function gradCheck(f: (xs: Tensor[]) => Tensor, inputs: { data: Float32Array; shape: number[] }[], opts: GradCheckOptions = {}): Promise<void> {
  const eps = opts.eps ?? 1e-2, tol = opts.tol ?? 2e-2, samples = opts.samples ?? 6;
  const leaves = inputs.map((i) => t(i.data, i.shape, true));
  const out = f(leaves);
  const w = t(randArray(out.size, opts.seed ?? 99), [...out.shape]);
  const loss = sum(mul(out, w));
  backward(loss);
  const grads = await Promise.all(leaves.map((l) => (l.grad ? read(l.grad) : Promise.resolve(new Float32Array(l.size)))));
  const lossAt = async (k: number, data: Float32Array): Promise<number> => {
    const v = scope(() => noGrad(() => {
      const xs = inputs.map((inp, j) => t(j === k ? data : inp.data, inp.shape));
      return sum(mul(f(xs), w));
    }));
    const r = await v.item();
    v.dispose();
    return r;
  };
  const r = rng(opts.seed ?? 7);
  for (let k = 0; k < inputs.length; k++) {
    const n = inputs[k].data.length;
    const idx = [...new Set(Array.from({ length: Math.min(samples, n) }, () => Math.floor(r() * n)))];
    const num: number[] = [], ana: number[] = [];
    for (const i of idx) {
      const p = Float32Array.from(inputs[k].data); p[i] += eps;
      const m = Float32Array.from(inputs[k].data); m[i] -= eps;
      num.push(((await lossAt(k, p)) - (await lossAt(k, m))) / (2 * eps));
      ana.push(grads[k][i]);
    }
    const scale = Math.max(...ana.map(Math.abs), ...num.map(Math.abs), 1e-3);
    const worst = Math.max(...num.map((v, j) => Math.abs(v - ana[j]))) / scale;
    expect(worst, `input ${k}: finite differences ${JSON.stringify(num.map((v) => +v.toPrecision(4)))} vs autograd ${JSON.stringify(ana.map((v) => +v.toPrecision(4)))}`).to.be.at.most(tol);
  }
  for (const l of leaves) l.dispose();
  w.dispose();
  loss.dispose();
  out.dispose();
}

/** The official reference dumps: $DIT_REFERENCE_DIR, else ../shared/reference beside the repository. */
export const REFERENCE_DIR = process.env.DIT_REFERENCE_DIR ?? fileURLToPath(new URL('../../../shared/reference', import.meta.url));
