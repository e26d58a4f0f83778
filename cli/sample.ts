// `dit sample`: class-conditional samples from a checkpoint or run folder (DDPM or DDIM, classifier-free
// guidance), decoded by a VAE: a PNG grid, and with --out-dir one PNG per sample in a folder per class.
import { Command } from 'commander';
import { getDevice, describeAdapter } from '../engine/device.js';
import { generate, loopOptions, type SamplerName } from '../diffusion/sample.js';
import { processFor } from '../diffusion/objective.js';
import { sampleImages, classLabels } from '../eval/samples.js';
import { readSampler, buildSampler, describeSampling } from '../runs/sampler.js';
import { toImage, grid, writePng } from '../data/png.js';
import { datasetGrid, writeClassFolders } from '../data/dataset.js';
import * as path from 'node:path';
import { existsSync } from 'node:fs';
import { WEIGHTS_DIR } from '../eval/judge.js';
import { int, num, choice, intList, existing, examples, log, checkOutputs, headsOption, samplingOptions, samplingFlags, UsageError, LIMITS } from './options.js';
import { Progress } from './progress.js';

interface SampleOpts { weights?: string; which: 'ema' | 'model'; heads?: number; vae?: string; labels?: number[]; perClass?: number; steps?: number; cfg?: number; sampler?: SamplerName; seed: number; out: string; outDir?: string; guide?: 'all' | 'official'; cfgInterval?: [number, number]; scaleFactor?: number; batch: number }


export function registerSample(program: Command): void {
  const cmd: Command = program.command('sample')
    .description('class-conditional samples from a checkpoint or run folder, decoded by a VAE: a PNG grid (and one PNG per sample with --out-dir)')
    .addOption(existing('--weights <ckpt-or-run>', 'a checkpoint (.safetensors / .pt) or a run folder (its latest checkpoint) (default: the shipped weights/dit-synthetic.safetensors)'))
    .addOption(choice('--which <weights>', 'of a training checkpoint: EMA or raw model weights', ['ema', 'model'], 'ema'))
    .addOption(existing('--vae <file>', 'the VAE to decode with (default: the one the run used)'))
    .addOption(headsOption())
    .addOption(intList('--labels <list>', 'class of each sample, e.g. 1,2,3 (default: 8 cycling over the classes)', { min: 0, max: LIMITS.images }))
    .addOption(int('--per-class <n>', 'n samples of every class instead of --labels', { min: 1, max: LIMITS.perClass }))
    .addOption(int('--seed <n>', 'noise seed', { min: 0, max: LIMITS.seed, def: 0 }))
    .addOption(int('--batch <n>', 'samples per GPU batch', { min: 1, max: LIMITS.batch, def: 200 }))
    .addOption(num('--scale-factor <x>', 'latent scale (default: the checkpoint\'s, else the VAE\'s)', { above: 0 }))
    .option('--out <file.png>', 'the grid', 'samples.png')
    .option('--out-dir <dir>', 'also write one PNG per sample: <dir>/<two-digit class>-<name>/<index>.png');
  for (const opt of samplingOptions()) cmd.addOption(opt);
  cmd.action(async (o: SampleOpts) => { process.exitCode = await runSample(o); });
  examples(cmd, [
    'dit sample --per-class 4 --out out/shipped-samples.png',
    'dit sample --weights out/runs/quick --per-class 8 --out out/samples.png --out-dir out/samples',
    'dit sample --weights out/runs/quick --per-class 8 --steps 30 --cfg 3 --out out/samples-30.png',
    'dit sample --weights ../shared/reference/dit_tiny_p2.pt --heads 4 --labels 0,1,2 --steps 25 --cfg 4 --out out/tiny-latents.png',
  ]);
}


/** What `dit sample` draws from without --weights: the DiT this project trained with its default recipe (weights/README.md). */
export const SHIPPED_DIT = path.join(WEIGHTS_DIR, 'dit-synthetic.safetensors');

async function runSample(o: SampleOpts): Promise<number> {
  if (o.labels && o.perClass) throw new UsageError('give --labels or --per-class, not both');
  const shipped = !o.weights;
  const weights = o.weights ?? SHIPPED_DIT;
  if (shipped && !existsSync(weights)) throw new UsageError(`--weights: not given, and the shipped ${weights} is missing (give a checkpoint or run folder)`);
  // The shipped DiT decodes with the shipped VAE, wherever the command runs from.
  const vae = o.vae ?? (shipped ? path.join(WEIGHTS_DIR, 'vae-synthetic.safetensors') : undefined);
  const f = await readSampler(weights, { ...o, vae, sampling: samplingFlags(o) });
  checkOutputs({ inputs: [f.file, f.vaeFile], outputs: [o.out], outputDirs: [o.outDir] });
  const K = f.config.numClasses;
  const labels = o.perClass ? classLabels(K, o.perClass) : o.labels ?? Array.from({ length: 8 }, (_, i) => i % K);
  const badLabel = labels.find((l) => l >= K);
  if (badLabel !== undefined) throw new UsageError(`--labels: ${badLabel} is not a class of this model (0–${K - 1})`);
  if (!f.vae && o.outDir) throw new UsageError(`--out-dir needs a VAE to decode with: ${f.file} names none (--vae)`);
  const g = await getDevice();
  log(`adapter: ${describeAdapter(g.adapter)}`);
  const s = buildSampler(f);
  const { sampler, steps, cfg, cfgInterval } = s.sampling;
  log(`${s.file} (${s.weights} weights): ${labels.length} samples; ${describeSampling(s)}`);
  const progress = new Progress('sampling', labels.length);
  if (!s.vae) {
    // No VAE: the latents themselves, first three channels min–max scaled.
    const c = s.model.config;
    const x = await generate(s.model, processFor(s.objective, s.sampling), labels, [c.inChannels, c.inputSize, c.inputSize], { ...loopOptions(s.sampling), seed: o.seed, nullLabel: K });
    const data = (await x.data()) as Float32Array, per = c.inChannels * c.inputSize * c.inputSize;
    await writePng(o.out, grid(labels.map((_, i) => toImage(data.subarray(i * per, (i + 1) * per), c.inChannels, c.inputSize, c.inputSize, 'minmax')), Math.min(8, labels.length), 4));
    log('no --vae: wrote the latents (first 3 channels, min–max scaled)');
  } else {
    const d = await sampleImages(s.model, s.vae, s.scale, labels, s.classes, { objective: s.objective, sampling: s.sampling, seed: o.seed, batch: o.batch, onProgress: (n) => progress.update(n) });
    await writePng(o.out, datasetGrid(d, o.perClass ?? Math.min(8, labels.length), Math.max(1, Math.floor(64 / d.width))));
    if (o.outDir) await writeClassFolders(d, o.outDir);
  }
  process.stdout.write(`wrote ${o.out}${o.outDir ? ` and ${labels.length} PNGs under ${o.outDir}/` : ''} (${labels.length} samples, ${sampler} ${steps} steps, cfg ${cfg}${cfgInterval ? ` at noise levels ${cfgInterval.join('–')}` : ''})\n`);
  return 0;
}
