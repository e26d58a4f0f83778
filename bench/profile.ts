// `node build/bench/profile.js [--model DiT-S/2] [--batch 2] [--top 20]`: GPU time per kernel (timestamp queries)
// of one DiT training step, to see what limits it on an adapter.
import { getDevice, describeAdapter, closeDevice } from '../engine/device.js';
import { scope, keep } from '../engine/tensor.js';
import { backward } from '../engine/autograd.js';
import { randn, Generator } from '../kernels/random.js';
import { DiT } from '../dit/model.js';
import { GaussianDiffusion } from '../diffusion/gaussian.js';
import { trainingLoss } from '../diffusion/train.js';
import { parseOptions, intOption } from './options.js';

const USAGE = 'usage: node build/bench/profile.js [--model DiT-S/2] [--batch 2] [--top 20]';

async function main(): Promise<void> {
  const a = parseOptions({ model: { type: 'string', default: 'DiT-S/2' }, batch: { type: 'string' }, top: { type: 'string' } }, USAGE);
  const name = a.model, B = intOption(a, 'batch', USAGE) ?? 2, top = intOption(a, 'top', USAGE) ?? 20;
  const g = await getDevice();
  const m = new DiT(name);
  m.train();
  const x = keep(randn([B, 4, m.config.inputSize, m.config.inputSize], 1));
  const y = Array.from({ length: B }, (_, i) => i);
  const d = new GaussianDiffusion({});
  const gen = new Generator(1);
  const step = () => scope(() => { const l = trainingLoss(m, d, { x0: x, y }, gen).lossMean; backward(l); m.zeroGrad(); return l; });
  (await step()).dispose();
  await g.sync();
  const before = g.stats.dispatches;
  g.setProfiling(true);
  const t0 = performance.now();
  const l = step();
  await l.item();
  await g.sync();
  const wall = performance.now() - t0;
  g.setProfiling(false);
  const rows = [...g.profile].sort((p, q) => q[1].ms - p[1].ms);
  const total = rows.reduce((s, [, v]) => s + v.ms, 0);
  process.stdout.write(`${describeAdapter(g.adapter)} — ${name} batch ${B}, one training step: wall ${wall.toFixed(1)} ms (profiled, one pass per dispatch), GPU ${total.toFixed(1)} ms in ${g.stats.dispatches - before} dispatches\n`);
  for (const [k, v] of rows.slice(0, top)) process.stdout.write(`${k.padEnd(48)} ${v.ms.toFixed(2).padStart(10)} ms ${String(v.count).padStart(5)}× ${((100 * v.ms) / total).toFixed(1).padStart(5)}%\n`);
  await closeDevice();
  process.exit(0);
}
main().catch((e: Error) => { process.stderr.write(`${e.stack}\n`); process.exit(1); });
