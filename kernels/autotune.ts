// The autotuner: times the candidate variants of the matmul problems a function issues and records the
// fastest in kernels/tuning.ts; `timeGpu` is the timing primitive the benchmarks share.
import { gpu } from '../engine/device.js';
import { Tensor, noGrad, scope } from '../engine/tensor.js';
import { matmul } from './matmul.js';
import { randn } from './random.js';
import { candidates, isTuned, problemKey, recordMatmulChoice, recordProblems, type MatmulProblem } from './tuning.js';

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

export interface TuneResult { key: string; problem: MatmulProblem; variant: string; ms: Record<string, number> }

/**
 * Runs `fn` once to record the matmul problems it issues, then times every candidate variant on each
 * problem not tuned yet (median of `reps`), keeps the fastest, and returns what it measured.
 */
export async function autotune(fn: () => unknown, opts: { reps?: number; onProgress?: (msg: string) => void } = {}): Promise<TuneResult[]> {
  const results: TuneResult[] = [];
  for (const p of await recordProblems(fn)) {
    if (isTuned(p)) continue;
    const r = await tuneProblem(p, opts.reps ?? 3);
    opts.onProgress?.(`autotune ${r.key}: ${r.variant} (${r.ms[r.variant].toFixed(1)} ms)`);
    results.push(r);
  }
  return results;
}

/** Times each candidate on random inputs of the problem's shape. */
export async function tuneProblem(p: MatmulProblem, reps = 3): Promise<TuneResult> {
  const ms: Record<string, number> = {};
  for (const v of candidates(p)) ms[v] = await timeMatmulVariant(p, v, reps);
  const variant = Object.entries(ms).sort((a, b) => a[1] - b[1])[0][0];
  recordMatmulChoice(p, variant);
  return { key: problemKey(p), problem: p, variant, ms };
}

