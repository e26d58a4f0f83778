// The timing rule every measurement shares (autotuner, benchmarks, the FMA probe).
import { gpu } from '../engine/device.js';
import { noGrad, scope } from '../engine/tensor.js';

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
