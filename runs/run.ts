// A training run owns a folder:
//   config.json          everything needed to rebuild the model, diffusion, data source and optimizer
//   metrics.jsonl        one line per logged step
//   checkpoints/step-<N>.safetensors   weights, EMA, AdamW state, step and random streams (dit/train.ts)
//   latest               the name of the newest checkpoint
//   loss.png, samples-<step>.png       pictures refreshed while it trains
// Files are written to a temporary name and renamed, so a process killed mid-write leaves the previous
// checkpoint and `latest` intact; a step whose loss is not finite is never checkpointed.
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic, readText } from '../engine/node.js';
import { readSafetensors, serializeSafetensors, type Safetensors } from '../engine/safetensors.js';
import { CheckpointError } from '../engine/errors.js';
import { type DiTConfig } from '../dit/config.js';
import { configFromMetadata } from '../dit/checkpoint.js';
import { DiT } from '../dit/model.js';
import { DiTTrainer, DivergenceError, type DiTTrainConfig, type StepMetrics } from '../dit/train.js';
import type { AutoencoderKL } from '../vae/model.js';
import type { ScheduleName } from '../diffusion/schedule.js';
import { sampleImages, classLabels } from '../eval/samples.js';
import { toImage, grid, writePng } from '../data/png.js';
import { lossChart, renderChartPng } from '../data/plot.js';

/** What config.json holds. */
export interface RunConfig {
  version: 1;
  model: DiTConfig;
  train: DiTTrainConfig;
  diffusion: { schedule: ScheduleName; steps: number; learnSigma: boolean };
  data: { latents: string; dataset: string | null; count: number; shape: [number, number, number]; scaleFactor: number; classes: string[] };
  /** The VAE that decodes the pictures (optional). */
  vae: string | null;
  logEvery: number;
  checkpointEvery: number;
  keep: number;
  /** Sample pictures: every N steps (0: only at the end), per class, DDIM steps, guidance. */
  samples: { every: number; perClass: number; steps: number; cfg: number };
  preset: string | null;
  /** The weights the run started from (`--init`), if any. */
  init: string | null;
}

export class Run {
  constructor(readonly dir: string, readonly config: RunConfig) {}

  get checkpointDir(): string { return path.join(this.dir, 'checkpoints'); }
  checkpointFile(step: number): string { return path.join(this.checkpointDir, `step-${step}.safetensors`); }
  get metricsFile(): string { return path.join(this.dir, 'metrics.jsonl'); }

  /**
   * Creates the folder and writes config.json. Refuses a folder that holds a run with a checkpoint; a run
   * that stopped before its first checkpoint (nothing to resume) is started again, its metrics dropped.
   */
  static async create(dir: string, config: RunConfig): Promise<Run> {
    const run = new Run(dir, config);
    if (existsSync(path.join(dir, 'config.json'))) {
      if (existsSync(path.join(dir, 'latest'))) throw new CheckpointError(`${dir} already holds a run with checkpoints; continue it with --resume ${dir}, or choose another --run`, { file: dir });
      await fs.rm(run.metricsFile, { force: true });
    }
    await fs.mkdir(run.checkpointDir, { recursive: true });
    await writeFileAtomic(path.join(dir, 'config.json'), [new TextEncoder().encode(`${JSON.stringify(config, null, 2)}\n`)]);
    return run;
  }

  static async open(dir: string): Promise<Run> {
    const file = path.join(dir, 'config.json');
    if (!existsSync(file)) throw new CheckpointError(`${dir}: not a run folder (no config.json)`, { file });
    let config: RunConfig;
    try {
      config = JSON.parse(await readText(file)) as RunConfig;
    } catch (e) {
      throw new CheckpointError(`${file}: not valid JSON (${(e as Error).message})`, { file, cause: e });
    }
    if (!config || typeof config !== 'object' || !config.model || !config.train || !config.data) throw new CheckpointError(`${file}: not a run's config (no model, train and data)`, { file });
    return new Run(dir, config);
  }

  /** The newest checkpoint's path, or null before the first. */
  async latest(): Promise<string | null> {
    const p = path.join(this.dir, 'latest');
    if (!existsSync(p)) return null;
    const name = (await readText(p)).trim();
    if (!/^step-\d+\.safetensors$/.test(name)) throw new CheckpointError(`${p} should name a checkpoint (step-<N>.safetensors), it holds ${JSON.stringify(name)}`, { file: p });
    const file = path.join(this.checkpointDir, name);
    if (!existsSync(file)) throw new CheckpointError(`${p} names ${name}, which is missing from ${this.checkpointDir}`, { file: p });
    return file;
  }

  /** Writes step-<N>, then points `latest` at it, then drops all but the newest `keep`. */
  async saveCheckpoint(trainer: DiTTrainer): Promise<string> {
    const c = this.config;
    const { tensors, metadata } = await trainer.checkpoint({ run: path.resolve(this.dir), scale_factor: String(c.data.scaleFactor), classes: JSON.stringify(c.data.classes), schedule: c.diffusion.schedule, ...(c.vae ? { vae: c.vae } : {}), ...(c.data.dataset ? { dataset: c.data.dataset } : {}), ...(c.preset ? { preset: c.preset } : {}) });
    const file = this.checkpointFile(trainer.step);
    await writeFileAtomic(file, serializeSafetensors(tensors, metadata));
    await writeFileAtomic(path.join(this.dir, 'latest'), [new TextEncoder().encode(`${path.basename(file)}\n`)]);
    const steps = (await fs.readdir(this.checkpointDir)).map((f) => /^step-(\d+)\.safetensors$/.exec(f)).filter((m) => m).map((m) => Number(m![1])).sort((a, b) => b - a);
    for (const s of steps.slice(Math.max(1, this.config.keep))) await fs.rm(this.checkpointFile(s), { force: true });
    return file;
  }

  async appendMetrics(m: StepMetrics): Promise<void> {
    await fs.appendFile(this.metricsFile, `${JSON.stringify({ step: m.step, loss: m.loss, mse: m.mse, vb: m.vb, lr: m.lr, grad_norm: m.gradNorm, steps_per_s: m.stepsPerSec, images_per_s: m.imagesPerSec, live_mib: m.liveMiB })}\n`);
  }

  async metrics(): Promise<{ step: number; loss: number }[]> {
    if (!existsSync(this.metricsFile)) return [];
    return (await readText(this.metricsFile)).split('\n').filter(Boolean).map((l) => JSON.parse(l));
  }

  /** Drops metrics lines after `step` (a resumed run rewrites what came after its checkpoint). */
  async truncateMetrics(step: number): Promise<void> {
    const kept = (await this.metrics()).filter((m) => m.step <= step);
    await writeFileAtomic(this.metricsFile, [new TextEncoder().encode(kept.map((m) => `${JSON.stringify(m)}\n`).join(''))]);
  }

  async writeLossPlot(): Promise<string> {
    const file = path.join(this.dir, 'loss.png');
    await renderChartPng(lossChart(await this.metrics(), `DiT training loss (${path.basename(this.dir)})`), file);
    return file;
  }
}

/** A checkpoint file: `src` itself, or a run folder's newest checkpoint. */
export async function resolveCheckpoint(src: string): Promise<string> {
  if (!existsSync(src)) throw new CheckpointError(`${src}: no such file or folder`, { file: src });
  if (!(await fs.stat(src)).isDirectory()) return src;
  const file = await (await Run.open(src)).latest();
  if (!file) throw new CheckpointError(`${src}: the run has no checkpoint yet`, { file: src });
  return file;
}

/** A run's newest checkpoint, read (and checked) on the host; null before the first. */
export async function readLatestCheckpoint(run: Run): Promise<{ file: string; st: Safetensors } | null> {
  const file = await run.latest();
  if (!file) return null;
  const st = await readSafetensors(file);
  if (st.metadata.format !== 'dit-webgpu-train') throw new CheckpointError(`${file}: not a training checkpoint of this project`, { file });
  return { file, st };
}

/** Restores a checkpoint read by `readLatestCheckpoint` into `trainer`, after checking that its model is the trainer's. */
export function restoreCheckpoint(trainer: DiTTrainer, { file, st }: { file: string; st: Safetensors }): void {
  const saved = configFromMetadata(st.metadata, file);
  const mc = trainer.model.config as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(saved ?? {})) if (JSON.stringify(mc[k]) !== JSON.stringify(v)) throw new CheckpointError(`${file}: the checkpoint's model has ${k} = ${JSON.stringify(v)}, this run's ${JSON.stringify(mc[k])}`, { file });
  trainer.restore({ tensors: new Map(st.keys().map((k) => [k, st.finiteF32(k)])), metadata: st.metadata, source: file });
}

/** Restores a run's newest checkpoint into `trainer`; returns its path (or null: nothing to resume). */
export async function resumeInto(run: Run, trainer: DiTTrainer): Promise<string | null> {
  const ckpt = await readLatestCheckpoint(run);
  if (ckpt) restoreCheckpoint(trainer, ckpt);
  return ckpt?.file ?? null;
}

/**
 * A grid of samples from the EMA weights: `perClass` per class (one row each), fixed noise and labels, DDIM,
 * decoded by the VAE. Uses `scratch` (a model of the same config) so the training weights stay untouched.
 */
export async function writeSamplePicture(trainer: DiTTrainer, scratch: DiT, vae: AutoencoderKL, file: string, o: { perClass: number; steps: number; cfg: number; classes: string[]; scale: number; schedule: ScheduleName }): Promise<void> {
  trainer.useEma(scratch);
  const K = scratch.config.numClasses;
  const d = await sampleImages(scratch, vae, o.scale, classLabels(K, o.perClass), o.classes, { steps: o.steps, cfg: o.cfg, seed: 1234, schedule: o.schedule });
  const per = d.channels * d.height * d.width;
  const imgs = Array.from({ length: d.count }, (_, i) => toImage(Float32Array.from(d.images.subarray(i * per, (i + 1) * per), (v) => v / 127.5 - 1), d.channels, d.height, d.width));
  await writePng(file, grid(imgs, o.perClass, 2));
}

export interface TrainLoopHooks {
  onMetrics?: (m: StepMetrics) => void;
  onCheckpoint?: (file: string) => void;
  onPicture?: (file: string) => void;
}

/**
 * Trains until `trainer.config.steps`: metrics every `logEvery` steps, a checkpoint every `checkpointEvery`
 * and at the end, pictures every `samples.every` steps and at the end. A non-finite loss stops it with a
 * DivergenceError before anything is written for that step.
 */
export async function trainLoop(run: Run, trainer: DiTTrainer, vae: AutoencoderKL | null, hooks: TrainLoopHooks = {}): Promise<void> {
  const c = run.config, total = trainer.config.steps;
  const scratch = vae ? new DiT(trainer.model.config, {}, 0) : null;
  const picture = async () => {
    if (!vae || !scratch) return;
    const file = path.join(run.dir, `samples-${trainer.step}.png`);
    await writeSamplePicture(trainer, scratch, vae, file, { perClass: c.samples.perClass, steps: c.samples.steps, cfg: c.samples.cfg, classes: c.data.classes, scale: c.data.scaleFactor, schedule: c.diffusion.schedule });
    hooks.onPicture?.(file);
  };
  try {
    while (trainer.step < total) {
      const next = trainer.step + 1;
      const log = next % c.logEvery === 0 || next === total;
      const ckpt = next % c.checkpointEvery === 0 || next === total;
      const pics = (c.samples.every > 0 && next % c.samples.every === 0) || next === total;
      trainer.trainStep(log);
      if (log) {
        const m = await trainer.metrics();
        await trainer.checkFinite();
        await run.appendMetrics(m);
        hooks.onMetrics?.(m);
      }
      if (ckpt) {
        await trainer.checkFinite();
        // Not `hooks.onCheckpoint?.(await …)`: an optional call skips evaluating its arguments when the hook
        // is absent, which silently skipped every checkpoint of callers without the hook (the demo).
        const file = await run.saveCheckpoint(trainer);
        hooks.onCheckpoint?.(file);
      }
      if (pics || (log && ckpt)) await run.writeLossPlot();
      if (pics) await picture();
      if (ckpt || pics) trainer.resetClock();
    }
  } finally {
    scratch?.dispose();
  }
}

export { DivergenceError };
