// `node build/bench/vaestep.js [--batch 16] [--latent-channels 4] [--equivariance 0] [--reps 5]`: the small VAE's
// training step as `dit vae train` runs it (encode, posterior sample, decode, L1 + KL, with --equivariance
// the decode of a transformed latent; backward, AdamW) on built-in images, timed after a warm-up that compiles
// every pipeline; the median wall time of `reps` steps, each read back (with the equivariance term each rep
// takes the next of its transforms, which differ in cost). What an engine-trained VAE costs per step.
import { getDevice, describeAdapter, closeDevice } from '../engine/device.js';
import { scope } from '../engine/tensor.js';
import { backward } from '../engine/autograd.js';
import { Generator } from '../kernels/random.js';
import { AdamW } from '../nn/optim.js';
import { generateSynthetic } from '../data/synthetic.js';
import { imageBatch } from '../data/dataset.js';
import { AutoencoderKL, SMALL_VAE_32 } from '../vae/model.js';
import { vaeLoss, EQUIVARIANCE_TRANSFORMS } from '../vae/train.js';
import { parseOptions, intOption } from './options.js';

const USAGE = 'usage: node build/bench/vaestep.js [--batch 16] [--latent-channels 4] [--equivariance 0] [--reps 5]';

async function main(): Promise<void> {
  const a = parseOptions({ batch: { type: 'string' }, 'latent-channels': { type: 'string' }, equivariance: { type: 'string' }, reps: { type: 'string' } }, USAGE);
  const B = intOption(a, 'batch', USAGE) ?? 16, L = intOption(a, 'latent-channels', USAGE) ?? SMALL_VAE_32.latentChannels, reps = intOption(a, 'reps', USAGE) ?? 5;
  const equivariance = Number(a.equivariance ?? 0);
  if (!(equivariance >= 0)) { process.stderr.write(`--equivariance expects a weight ≥ 0, got '${a.equivariance}'\n${USAGE}\n`); process.exit(2); }
  const g = await getDevice();
  const vae = new AutoencoderKL({ ...SMALL_VAE_32, latentChannels: L }, 0);
  vae.train();
  const opt = new AdamW(vae.parameters(), { lr: 1e-4, weightDecay: 0 });
  const images = generateSynthetic(0, 0, B);
  const idx = Array.from({ length: B }, (_, i) => i);
  const gen = new Generator(1);
  const step = async (k: number) => {
    const t0 = performance.now();
    const l = scope(() => {
      const loss = vaeLoss(vae, imageBatch(images, idx), gen, { loss: 'l1', klWeight: 1e-6, equivariance, transform: equivariance ? k % EQUIVARIANCE_TRANSFORMS : -1 });
      backward(loss);
      opt.step();
      opt.zeroGrad();
      return loss;
    });
    await l.item();
    l.dispose();
    return performance.now() - t0;
  };
  // Warm-up: every transform once (each has its own pipelines), so no timed step compiles.
  for (let k = 0; k < (equivariance ? EQUIVARIANCE_TRANSFORMS : 1); k++) await step(k);
  const ms: number[] = [];
  for (let r = 0; r < reps; r++) ms.push(await step(r));
  const sorted = [...ms].sort((x, y) => x - y);
  process.stdout.write(`${describeAdapter(g.adapter)} — small VAE (${SMALL_VAE_32.blockOutChannels.join(', ')} → ${L} latent channels), batch ${B}, equivariance ${equivariance}: `
    + `median ${(sorted[reps >> 1] / 1000).toFixed(2)} s a training step over ${reps} (${ms.map((x) => (x / 1000).toFixed(2)).join(', ')})\n`);
  opt.dispose();
  vae.dispose();
  await closeDevice();
  process.exit(0);
}
main().catch((e: Error) => { process.stderr.write(`${e.stack}\n`); process.exit(1); });
