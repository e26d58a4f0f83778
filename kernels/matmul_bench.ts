// Timing helpers shared by the autotuner and the benchmarks: median wall time of GPU work, synced.
import { gpu } from '../engine/device.js';
import { Tensor, noGrad, scope } from '../engine/tensor.js';
import { matmul } from './matmul.js';
import type { MatmulProblem } from './autotune.js';
import { randn } from './random.js';

const now = () => performance.now();

/**
 * Median milliseconds per call of `run` (which records GPU work): a warm-up, then samples of k calls each,
 * k chosen so that a sample takes at least `minSampleMs`; each sample ends with a full GPU sync.
 */
export async function timeGpu(run: () => void, reps = 3, minSampleMs = 40): Promise<number> {
  const g = gpu();
  scope(() => noGrad(run));
  await g.sync('bench');
  let t0 = now();
  scope(() => noGrad(run));
  await g.sync('bench');
  const first = now() - t0;
  const k = Math.max(1, Math.min(64, Math.ceil(minSampleMs / Math.max(first, 0.01))));
  const samples: number[] = [];
  for (let r = 0; r < reps; r++) {
    t0 = now();
    for (let i = 0; i < k; i++) scope(() => noGrad(run));
    await g.sync('bench');
    samples.push((now() - t0) / k);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

export function operandsFor(p: MatmulProblem, seed = 1): { a: Tensor; b: Tensor } {
  const aShape = p.transA ? [p.K, p.M] : [p.M, p.K];
  const bShape = p.transB ? [p.N, p.K] : [p.K, p.N];
  const a = randn(p.strideA ? [p.batch, ...aShape] : aShape, seed, p.dtA);
  const b = randn(p.strideB ? [p.batch, ...bShape] : bShape, seed + 1, p.dtB);
  return { a, b };
}

export async function timeMatmulVariant(p: MatmulProblem, variant: string, reps = 3): Promise<number> {
  const { a, b } = operandsFor(p);
  try {
    return await timeGpu(() => { matmul(a, b, { transA: p.transA, transB: p.transB, variant }); }, reps);
  } finally {
    a.dispose();
    b.dispose();
  }
}
