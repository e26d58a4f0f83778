// `npm run bench:dit [-- --models DiT-S/2,DiT-XL/2] [-- --batch 8] [-- --reps 3] [-- --json FILE]`: DiT forward and training
// step (forward + backward + AdamW) throughput, images/s and achieved GFLOP/s by the paper's flop count
// (one multiply-add = 2 FLOP here; a training step counted as 3× the forward).
import { getDevice, describeAdapter, closeDevice } from '../engine/device.js';
import { scope, noGrad, keep, memory } from '../engine/tensor.js';
import { backward } from '../engine/autograd.js';
import { AdamW } from '../nn/optim.js';
import { writeFileAtomic } from '../engine/node.js';
import { randn, Generator } from '../kernels/random.js';
import { DiT } from '../dit/model.js';
import { ditGflops } from '../dit/config.js';
import { GaussianDiffusion } from '../diffusion/gaussian.js';
import { trainingLoss } from '../diffusion/train.js';
import { parseOptions, intOption } from './options.js';

const USAGE = 'usage: npm run bench:dit [-- --models DiT-S/2,DiT-XL/2] [-- --batch 8] [-- --reps 3] [-- --json FILE]';

async function main(): Promise<void> {
  const a = parseOptions({ models: { type: 'string', default: 'DiT-S/2' }, batch: { type: 'string' }, reps: { type: 'string' }, json: { type: 'string' } }, USAGE);
  const models = a.models.split(',');
  const B = intOption(a, 'batch', USAGE) ?? 8, reps = intOption(a, 'reps', USAGE) ?? 3;
  const g = await getDevice();
  const rows: object[] = [];
  process.stderr.write(`adapter: ${describeAdapter(g.adapter)}\n`);
  for (const name of models) {
    const model = new DiT(name, {}, 0);
    const gf = ditGflops(model.config);
    const x = keep(randn([B, 4, model.config.inputSize, model.config.inputSize], 1));
    const y = Array.from({ length: B }, (_, i) => i % 1000), t = Array.from({ length: B }, (_, i) => (i * 97) % 1000);
    model.eval();
    const timeIt = async (f: () => unknown) => {
      await scope(() => f() as never); await g.sync();
      const s: number[] = [];
      for (let r = 0; r < reps; r++) { const t0 = performance.now(); scope(() => f() as never); await g.sync(); s.push(performance.now() - t0); }
      return s.sort((p, q) => p - q)[Math.floor(s.length / 2)];
    };
    const fwd = await timeIt(() => noGrad(() => model.forward(x, t, y)));
    model.train();
    const opt = new AdamW(model.parameters(), { lr: 1e-4, weightDecay: 0 });
    const diffusion = new GaussianDiffusion({});
    const gen = new Generator(3);
    const step = await timeIt(() => { const l = trainingLoss(model, diffusion, { x0: x, y }, gen).lossMean; backward(l); opt.step(); opt.zeroGrad(); return l; });
    const row = { model: name, batch: B, gflopsPerImage: gf, forwardMs: fwd, forwardImagesPerSec: (1000 * B) / fwd, forwardGflops: (2 * gf * B) / (fwd / 1000), trainStepMs: step, trainImagesPerSec: (1000 * B) / step, trainGflops: (6 * gf * B) / (step / 1000), liveMiB: memory().liveBytes / 2 ** 20 };
    rows.push(row);
    process.stdout.write(`${name} batch ${B}: forward ${fwd.toFixed(1)} ms (${row.forwardImagesPerSec.toFixed(2)} img/s, ${row.forwardGflops.toFixed(1)} GFLOP/s); train step ${step.toFixed(1)} ms (${row.trainImagesPerSec.toFixed(2)} img/s, ${row.trainGflops.toFixed(1)} GFLOP/s); live ${row.liveMiB.toFixed(0)} MiB\n`);
    opt.dispose(); model.dispose(); x.dispose();
  }
  const json = a.json;
  if (json) await writeFileAtomic(json, [new TextEncoder().encode(JSON.stringify({ adapter: describeAdapter(g.adapter), rows }, null, 1))]);
  await closeDevice();
  process.exit(0);
}
main().catch((e: Error) => { process.stderr.write(`${e.stack}\n`); process.exit(1); });
