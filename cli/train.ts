// `dit train`: a DiT on a latent cache (from `dit vae encode`), then a grid of class-conditional samples
// decoded by the VAE. Prints loss and speed as it goes; checkpoints atomically.
import { getDevice, describeAdapter } from '../engine/device.js';
import { scope, noGrad } from '../engine/tensor.js';
import { readSafetensors } from '../engine/safetensors.js';
import { DiT } from '../dit/model.js';
import { ditConfig, DIT_MODEL_NAMES, type DiTConfig } from '../dit/config.js';
import { LatentSet, trainDiT, useEma } from '../dit/train.js';
import { GaussianDiffusion } from '../diffusion/gaussian.js';
import { generate } from '../diffusion/sample.js';
import { loadVae } from '../vae/checkpoint.js';
import { scale } from '../kernels/elementwise.js';
import { toImage, grid, writePng } from '../data/png.js';
import type { AutoencoderKL } from '../vae/model.js';
import { Progress } from './progress.js';
import type { Args } from './args.js';

/** The small default for 8×8×4 latents: 16 tokens of width 192, 6 blocks. */
export function smallDiTConfig(data: LatentSet, a: Args): DiTConfig {
  const [C, h] = data.shape;
  const name = a.str('model');
  const over: Partial<DiTConfig> = { inputSize: h, inChannels: C, numClasses: Math.max(data.classes.length, Math.max(...data.labels) + 1) };
  if (name && DIT_MODEL_NAMES.includes(name)) return ditConfig(name, over);
  return ditConfig(undefined, { ...over, patchSize: a.num('patch') ?? 2, hiddenSize: a.num('hidden') ?? 192, depth: a.num('depth') ?? 6, numHeads: a.num('heads') ?? 6 });
}

export async function sampleGrid(model: DiT, vae: AutoencoderKL, latentScale: number, classes: string[], file: string, opts: { steps?: number; cfg?: number; perClass?: number; seed?: number } = {}): Promise<void> {
  const c = model.config;
  const per = opts.perClass ?? 8;
  const labels = Array.from({ length: c.numClasses * per }, (_, i) => Math.floor(i / per));
  const diffusion = new GaussianDiffusion({ respacing: `ddim${opts.steps ?? 50}`, learnSigma: c.learnSigma });
  const progress = new Progress('  sampling', diffusion.numTimesteps);
  model.eval();
  const z = await generate(model, diffusion, labels, [c.inChannels, c.inputSize, c.inputSize], { sampler: 'ddim', cfgScale: opts.cfg ?? 3, nullLabel: c.numClasses, seed: opts.seed ?? 0, onStep: ({ step }) => progress.update(step + 1) });
  const x = scope(() => noGrad(() => vae.decodeLarge(scale(z, 1 / latentScale), (m) => process.stderr.write(`${m}\n`))));
  const data = (await x.data()) as Float32Array;
  const [, C, H, W] = x.shape;
  await writePng(file, grid(labels.map((_, i) => toImage(data.subarray(i * C * H * W, (i + 1) * C * H * W), C, H, W)), per, 2));
  z.dispose(); x.dispose();
  process.stdout.write(`  wrote ${file}: one row per class (${classes.join(', ')}), ${per} samples each\n`);
}

export async function runTrain(a: Args): Promise<number> {
  const g = await getDevice();
  process.stderr.write(`adapter: ${describeAdapter(g.adapter)}\n`);
  const latents = a.str('latents') ?? 'out/latents.safetensors';
  const data = new LatentSet(await readSafetensors(latents));
  const config = smallDiTConfig(data, a);
  const model = new DiT(config, {}, a.num('seed') ?? 0);
  const steps = a.num('steps') ?? 2000;
  const out = a.str('out') ?? 'out/dit-small.safetensors';
  process.stderr.write(`DiT ${JSON.stringify({ D: config.hiddenSize, depth: config.depth, heads: config.numHeads, patch: config.patchSize, tokens: (config.inputSize / config.patchSize) ** 2 })}, ${model.numParameters().toLocaleString('en-US')} parameters; ${data.count} latents ${JSON.stringify(data.shape)}, scale ${data.scale.toFixed(4)}; ${steps} steps\n`);
  const progress = new Progress('training', steps);
  const r = await trainDiT(model, new GaussianDiffusion({}), data, {
    steps, batch: a.num('batch') ?? 64, lr: a.num('lr') ?? 3e-4, emaDecay: a.num('ema') ?? 0.999, emaWarmup: a.has('ema-warmup') ? a.bool('ema-warmup') : true, seed: a.num('seed') ?? 0, checkpoint: out, checkpointEvery: 500, logEvery: 25,
    onLog: (m) => progress.update(m.step, `loss ${m.loss.toFixed(4)}, ${m.stepsPerSec.toFixed(2)} steps/s, ${m.liveMiB.toFixed(0)} MiB live`),
  });
  process.stdout.write(`trained ${steps} steps in ${r.seconds.toFixed(0)} s (${(steps / r.seconds).toFixed(2)} steps/s at batch ${a.num('batch') ?? 64}); final loss ${r.lastLoss.toFixed(4)}; wrote ${out} (EMA weights)\n`);
  const vaeFile = a.str('vae');
  if (vaeFile) {
    useEma(model, r.ema);
    await sampleGrid(model, await loadVae(vaeFile), data.scale, data.classes, out.replace(/\.safetensors$/, '-samples.png'), { cfg: a.num('cfg') ?? 3 });
  }
  return 0;
}
