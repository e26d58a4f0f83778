// `dit sample`: class-conditional samples from a DiT checkpoint (DDPM or DDIM, classifier-free guidance),
// decoded with a VAE when one is given, written as a PNG grid.
import { getDevice, describeAdapter } from '../engine/device.js';
import { readWeights, ditFromWeights } from '../dit/checkpoint.js';
import { GaussianDiffusion } from '../diffusion/gaussian.js';
import { generate } from '../diffusion/sample.js';
import { toImage, grid, writePng } from '../data/png.js';
import { scope, noGrad } from '../engine/tensor.js';
import { scale } from '../kernels/elementwise.js';
import { loadVae } from '../vae/checkpoint.js';
import { Progress } from './progress.js';
import type { Args } from './args.js';

export async function runSample(a: Args): Promise<number> {
  const weights = a.str('weights');
  if (!weights) { process.stderr.write('dit sample: --weights FILE is required\n'); return 2; }
  const g = await getDevice();
  process.stderr.write(`adapter: ${describeAdapter(g.adapter)}\n`);
  const w = await readWeights(weights, { ema: !a.bool('model') });
  const model = ditFromWeights(w);
  model.eval();
  const c = model.config;
  const labels = a.list('labels') ?? Array.from({ length: 8 }, (_, i) => i % c.numClasses);
  const steps = a.num('steps') ?? 250;
  const sampler = (a.str('sampler') ?? 'ddpm') as 'ddpm' | 'ddim';
  const diffusion = new GaussianDiffusion({ respacing: sampler === 'ddim' && !a.has('respacing') ? `ddim${steps}` : a.str('respacing') ?? String(steps), learnSigma: c.learnSigma });
  const cfgScale = a.num('cfg') ?? 4;
  const progress = new Progress('sampling', diffusion.numTimesteps);
  const x = await generate(model, diffusion, labels, [c.inChannels, c.inputSize, c.inputSize], {
    sampler, cfgScale, seed: a.num('seed') ?? 0, nullLabel: c.numClasses, guideAllChannels: a.bool('guide-all'),
    onStep: ({ step, total }) => progress.update(step + 1 === total ? total : step + 1),
  });
  const out = a.str('out') ?? 'samples.png';
  let images;
  const vaeFile = a.str('vae');
  if (vaeFile) {
    // Latents are scale·z: divide by the DiT checkpoint's scale factor (or --scale-factor, or the VAE's).
    const vae = await loadVae(vaeFile);
    const latentScale = a.num('scale-factor') ?? (w.metadata.scale_factor ? Number(w.metadata.scale_factor) : vae.config.scalingFactor);
    const img = scope(() => noGrad(() => vae.decodeLarge(scale(x, 1 / latentScale), (m) => process.stderr.write(`${m}\n`))));
    const [, C, H, W] = img.shape;
    const data = (await img.data()) as Float32Array;
    images = labels.map((_, i) => toImage(data.subarray(i * C * H * W, (i + 1) * C * H * W), C, H, W));
  } else {
    const data = (await x.data()) as Float32Array;
    const per = c.inChannels * c.inputSize * c.inputSize;
    images = labels.map((_, i) => toImage(data.subarray(i * per, (i + 1) * per), c.inChannels, c.inputSize, c.inputSize, 'minmax'));
    process.stderr.write('no --vae: writing the latents (first 3 channels, min–max scaled)\n');
  }
  await writePng(out, grid(images, Math.min(8, labels.length), Math.max(1, Math.floor(128 / images[0].width))));
  process.stdout.write(`wrote ${out} (${labels.length} samples, labels ${labels.join(',')}, ${sampler} ${diffusion.numTimesteps} steps, cfg ${cfgScale})\n`);
  return 0;
}
