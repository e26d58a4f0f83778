// `dit sample`: class-conditional samples from a checkpoint or run folder (DDPM or DDIM, classifier-free
// guidance), decoded by a VAE: a PNG grid, and with --out-dir one PNG per sample in a folder per class.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Command, type Option } from 'commander';
import { getDevice, describeAdapter } from '../engine/device.js';
import { readWeights, ditFromWeights, weightsConfig, configFromMetadata, type WeightSet } from '../dit/checkpoint.js';
import type { DiT } from '../dit/model.js';
import type { DiTConfig } from '../dit/config.js';
import { metadataJson } from '../engine/safetensors.js';
import { readVae, buildVae, type VaeFile } from '../vae/checkpoint.js';
import type { AutoencoderKL } from '../vae/model.js';
import { GaussianDiffusion } from '../diffusion/gaussian.js';
import { generate } from '../diffusion/sample.js';
import { sampleImages, classLabels } from '../eval/samples.js';
import { resolveCheckpoint } from '../runs/run.js';
import { toImage, grid, writePng, type Image } from '../data/png.js';
import type { ImageDataset } from '../data/dataset.js';
import type { ScheduleName } from '../diffusion/schedule.js';
import { int, num, choice, intList, existing, examples, log, checkOutputs, UsageError, LIMITS } from './options.js';
import { Progress } from './progress.js';
import { PRESETS, type Preset } from '../dit/presets.js';

/** What a sampler is, read from its files on the host before any GPU work. */
export interface SamplerInfo {
  file: string; config: DiTConfig; scale: number; classes: string[]; weights: string; dataset: string | null; schedule: ScheduleName;
  /** The VAE that decodes its latents (`--vae`, else the one the checkpoint names), if any. */
  vaeFile: string | null;
  /** The preset the weights were trained with (checkpoints of `dit train --preset` say so), if any. */
  preset: { name: string; sample: Preset['sample'] } | null;
}
/** A sampler's files as read by `readSampler`. */
export interface SamplerFiles extends SamplerInfo { dit: WeightSet; vae: VaeFile | null }
/** A sampler on the GPU. */
export interface SamplerSource extends SamplerInfo { model: DiT; vae: AutoencoderKL | null }

/** Sampling settings: each flag given wins, then the preset the weights were trained with, then the command's defaults. */
export function samplingSettings(flags: Partial<Preset['sample']>, s: Pick<SamplerInfo, 'preset'>, defaults: Preset['sample']): Preset['sample'] {
  const base = s.preset?.sample ?? defaults;
  return { sampler: flags.sampler ?? base.sampler, steps: flags.steps ?? base.steps, cfg: flags.cfg ?? base.cfg };
}

/**
 * Reads a checkpoint (or a run folder's latest), its config (`heads` for weights that do not record it),
 * the VAE it names (or `o.vae`), its latent scale and class names, without the GPU: everything wrong with
 * them is said before any GPU work.
 */
export async function readSampler(src: string, o: { which: 'ema' | 'model'; vae?: string; heads?: number; scaleFactor?: number }): Promise<SamplerFiles> {
  const file = await resolveCheckpoint(src);
  const w = await readWeights(file, { ema: o.which === 'ema' });
  const recorded = configFromMetadata(w.metadata, file)?.numHeads;
  if (o.heads !== undefined && recorded !== undefined && recorded !== o.heads) throw new UsageError(`--heads ${o.heads}: ${file} records its model's ${recorded} heads`);
  const config = weightsConfig(w, o.heads !== undefined ? { numHeads: o.heads } : {});
  const vaeFile = o.vae ?? w.metadata.vae ?? null;
  const vae = vaeFile ? await readVae(vaeFile) : null;
  if (vae && vae.config.latentChannels !== config.inChannels) throw new UsageError(`${vaeFile}: the VAE's latents have ${vae.config.latentChannels} channels, the DiT of ${file} takes ${config.inChannels}: give the VAE it was trained with (--vae)`);
  const scale = o.scaleFactor ?? (w.metadata.scale_factor ? Number(w.metadata.scale_factor) : vae?.config.scalingFactor ?? 1);
  const classes = metadataJson<string[]>(w.metadata, 'classes', file) ?? Array.from({ length: config.numClasses }, (_, i) => `class${i}`);
  // The noise schedule it was trained with (released DiT checkpoints: linear).
  const schedule = (w.metadata.schedule ?? 'linear') as ScheduleName;
  const name = w.metadata.preset;
  const preset = name && Object.hasOwn(PRESETS, name) ? { name, sample: PRESETS[name as keyof typeof PRESETS].sample } : null;
  return { file, config, scale, classes, weights: w.metadata.weights ?? 'model', dataset: w.metadata.dataset ?? null, schedule, vaeFile, preset, dit: w, vae };
}

/** The sampler of `readSampler`'s files on the GPU. */
export function buildSampler({ dit, vae, ...info }: SamplerFiles): SamplerSource {
  const model = ditFromWeights(dit, info.config);
  model.eval();
  return { ...info, model, vae: vae ? buildVae(vae) : null };
}

/** Folder name of class k: two-digit index, then the name with anything but letters, digits, '-' and '_' as '-'. */
export function classFolder(k: number, name: string): string {
  return `${String(k).padStart(2, '0')}-${name.replace(/[^A-Za-z0-9_-]+/g, '-')}`;
}

/** Writes `DIR/<class folder>/<index>.png` for every sample (the layout our PNG-folder reader and FID tools read). */
export async function writeSampleFolder(d: ImageDataset, dir: string): Promise<void> {
  const per = d.channels * d.height * d.width;
  const next = new Array(d.classes.length).fill(0);
  await Promise.all(d.classes.map((c, k) => fs.mkdir(path.join(dir, classFolder(k, c)), { recursive: true })));
  for (let i = 0; i < d.count; i++) {
    const k = d.labels[i];
    await writePng(path.join(dir, classFolder(k, d.classes[k]), `${String(next[k]++).padStart(4, '0')}.png`), imageOf(d, i, per));
  }
}

function imageOf(d: ImageDataset, i: number, per: number): Image {
  return toImage(Float32Array.from(d.images.subarray(i * per, (i + 1) * per), (v) => v / 127.5 - 1), d.channels, d.height, d.width);
}

/** A grid with one row per requested class (as many columns as samples per class). */
export async function writeSampleGrid(d: ImageDataset, file: string, perRow: number): Promise<void> {
  const per = d.channels * d.height * d.width;
  await writePng(file, grid(Array.from({ length: d.count }, (_, i) => imageOf(d, i, per)), perRow, Math.max(1, Math.floor(64 / d.width))));
}

/** Without a preset: the official sample.py's sampler and steps. */
const SAMPLE_DEFAULTS: Preset['sample'] = { sampler: 'ddpm', steps: 250, cfg: 4 };

interface SampleOpts { weights: string; which: 'ema' | 'model'; heads?: number; vae?: string; labels?: number[]; perClass?: number; steps?: number; cfg?: number; sampler?: 'ddpm' | 'ddim'; seed: number; out: string; outDir?: string; guide: 'all' | 'official'; scaleFactor?: number; batch: number }

export function registerSample(program: Command): void {
  const cmd = program.command('sample')
    .description('class-conditional samples from a checkpoint or run folder, decoded by a VAE: a PNG grid (and one PNG per sample with --out-dir)')
    .addOption(existing('--weights <ckpt-or-run>', 'a checkpoint (.safetensors / .pt) or a run folder (its latest checkpoint)').makeOptionMandatory())
    .addOption(choice('--which <weights>', 'of a training checkpoint: EMA or raw model weights', ['ema', 'model'], 'ema'))
    .addOption(existing('--vae <file>', 'the VAE to decode with (default: the one the run used)'))
    .addOption(headsOption())
    .addOption(intList('--labels <list>', 'class of each sample, e.g. 1,2,3 (default: 8 cycling over the classes)', { min: 0, max: LIMITS.images }))
    .addOption(int('--per-class <n>', 'n samples of every class instead of --labels', { min: 1, max: LIMITS.perClass }))
    .addOption(int('--steps <n>', `sampling steps (respaced from 1000) [default: the preset's the weights were trained with, else ${SAMPLE_DEFAULTS.steps}]`, { min: 1, max: 1000 }))
    .addOption(num('--cfg <scale>', `classifier-free guidance scale (1: none) [default: the preset's, else ${SAMPLE_DEFAULTS.cfg}]`, { min: 0 }))
    .addOption(choice('--sampler <name>', `DDPM (ancestral) or DDIM (η = 0) [default: the preset's, else ${SAMPLE_DEFAULTS.sampler}]`, ['ddpm', 'ddim']))
    .addOption(choice('--guide <channels>', 'guide all latent channels, or only the first three as the official sample.py', ['all', 'official'], 'all'))
    .addOption(int('--seed <n>', 'noise seed', { min: 0, max: LIMITS.seed, def: 0 }))
    .addOption(int('--batch <n>', 'samples per GPU batch', { min: 1, max: LIMITS.batch, def: 200 }))
    .addOption(num('--scale-factor <x>', 'latent scale (default: the checkpoint\'s, else the VAE\'s)', { above: 0 }))
    .option('--out <file.png>', 'the grid', 'samples.png')
    .option('--out-dir <dir>', 'also write one PNG per sample: <dir>/<two-digit class>-<name>/<index>.png')
    .action(async (o: SampleOpts) => { process.exitCode = await runSample(o); });
  examples(cmd, [
    'dit sample --weights out/runs/quick --per-class 8 --out out/samples.png --out-dir out/samples',
    'dit sample --weights out/runs/quick --per-class 8 --sampler ddim --steps 50 --cfg 3 --out out/samples-ddim50.png',
    'dit sample --weights ../shared/reference/dit_tiny_p2.pt --heads 4 --labels 0,1,2 --steps 25 --cfg 4 --out out/tiny-latents.png',
  ]);
}

/** `--heads` of `dit sample` and `dit eval`: for weights that do not record their config. */
export function headsOption(): Option {
  return int('--heads <n>', 'attention heads of weights that do not record their config (a .pt whose width is not DiT-S, B, L or XL\'s)', { min: 1, max: LIMITS.heads });
}

async function runSample(o: SampleOpts): Promise<number> {
  if (o.labels && o.perClass) throw new UsageError('give --labels or --per-class, not both');
  const f = await readSampler(o.weights, o);
  checkOutputs({ inputs: [f.file, f.vaeFile], outputs: [o.out], outputDirs: [o.outDir] });
  const K = f.config.numClasses;
  const labels = o.perClass ? classLabels(K, o.perClass) : o.labels ?? Array.from({ length: 8 }, (_, i) => i % K);
  const badLabel = labels.find((l) => l >= K);
  if (badLabel !== undefined) throw new UsageError(`--labels: ${badLabel} is not a class of this model (0–${K - 1})`);
  if (!f.vae && o.outDir) throw new UsageError(`--out-dir needs a VAE to decode with: ${f.file} names none (--vae)`);
  const g = await getDevice();
  log(`adapter: ${describeAdapter(g.adapter)}`);
  const s = buildSampler(f);
  const { sampler, steps, cfg } = samplingSettings(o, s, SAMPLE_DEFAULTS);
  log(`${s.file} (${s.weights} weights, ${s.schedule} schedule${s.preset ? `, preset ${s.preset.name}` : ''}): ${labels.length} samples, ${sampler} ${steps} steps, guidance ${cfg} on ${o.guide} channels`);
  const progress = new Progress('sampling', labels.length);
  if (!s.vae) {
    // No VAE: the latents themselves, first three channels min–max scaled.
    const c = s.model.config;
    const diffusion = new GaussianDiffusion({ respacing: sampler === 'ddim' ? `ddim${steps}` : String(steps), learnSigma: c.learnSigma, schedule: s.schedule });
    const x = await generate(s.model, diffusion, labels, [c.inChannels, c.inputSize, c.inputSize], { sampler, cfgScale: cfg, seed: o.seed, nullLabel: K, guideAllChannels: o.guide === 'all' });
    const data = (await x.data()) as Float32Array, per = c.inChannels * c.inputSize * c.inputSize;
    await writePng(o.out, grid(labels.map((_, i) => toImage(data.subarray(i * per, (i + 1) * per), c.inChannels, c.inputSize, c.inputSize, 'minmax')), Math.min(8, labels.length), 4));
    log('no --vae: wrote the latents (first 3 channels, min–max scaled)');
  } else {
    const d = await sampleImages(s.model, s.vae, s.scale, labels, s.classes, { sampler, steps, cfg, seed: o.seed, schedule: s.schedule, guideAllChannels: o.guide === 'all', batch: o.batch, onProgress: (n) => progress.update(n) });
    await writeSampleGrid(d, o.out, o.perClass ?? Math.min(8, labels.length));
    if (o.outDir) await writeSampleFolder(d, o.outDir);
  }
  process.stdout.write(`wrote ${o.out}${o.outDir ? ` and ${labels.length} PNGs under ${o.outDir}/` : ''} (${labels.length} samples, ${sampler} ${steps} steps, cfg ${cfg})\n`);
  return 0;
}
