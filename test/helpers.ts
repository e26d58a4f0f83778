// Test helpers: one device for the suite (outputs poisoned with NaN), seeded host data, error measures.
// Kernel checks against float64 (values and finite-difference gradients) live in kernels/registry.ts.
import { expect } from 'chai';
import { fileURLToPath } from 'node:url';
import { getDevice, type Gpu } from '../engine/device.js';
import { Tensor } from '../engine/tensor.js';
import { relErr } from '../kernels/registry.js';
import { mulberry32 } from '../data/synthetic.js';
import { RECIPES } from '../dit/recipes.js';
import type { DiTTrainConfig } from '../dit/train.js';

let dev: Gpu | null = null;

export async function device(): Promise<Gpu> {
  if (!dev) {
    dev = await getDevice();
    dev.poison = true;
  }
  return dev;
}

/** Normal(0, scale²) values (Box–Muller), never exactly zero. */
export function randArray(n: number, seed: number, scale = 1): Float32Array {
  const r = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u1 = r() || 1e-9, u2 = r();
    out[i] = scale * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2) || 1e-3;
  }
  return out;
}

/** max|got − ref| / max|ref| ("rel-to-max"), NaN-aware: the registry's measure. */
export { relErr };

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

/** The official reference dumps: $DIT_REFERENCE_DIR, else ../shared/reference beside the repository. */
export const REFERENCE_DIR = process.env.DIT_REFERENCE_DIR ?? fileURLToPath(new URL('../../../shared/reference', import.meta.url));

/** A DiT training configuration for tests: the official optimisation with the EMA warm-up, seed 0, and `over`. */
export function trainConfig(over: Partial<DiTTrainConfig> = {}): DiTTrainConfig {
  return { ...RECIPES.official.optim, emaWarmup: true, seed: 0, ...over };
}
