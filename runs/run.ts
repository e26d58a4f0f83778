// A training run owns a folder:
//   config.json          the plan (runs/plan.ts): the recipe as it runs, the model, the data, the schedule
//   metrics.jsonl        one line per logged step
//   checkpoints/step-<N>.safetensors   weights, EMA, AdamW state, step and random streams (dit/train.ts)
//   latest               the name of the newest checkpoint
//   snapshots/step-<N>.safetensors     EMA weights at evenly spaced steps: the learning curve's points
//   loss.png, samples-<step>.png       pictures refreshed while it trains
// Files are written to a temporary name and renamed, so a process killed mid-write leaves the previous
// checkpoint and `latest` intact; a step whose loss is not finite is never checkpointed.
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic, readText } from '../engine/node.js';
import { readSafetensors, serializeSafetensors, type Safetensors } from '../engine/safetensors.js';
import { CheckpointError } from '../engine/errors.js';
import { configFromMetadata, configToJson } from '../dit/checkpoint.js';
import { DiT } from '../dit/model.js';
import { DiTTrainer, DivergenceError, type StepMetrics } from '../dit/train.js';
import type { AutoencoderKL } from '../vae/model.js';
import { datasetGrid } from '../data/dataset.js';
import { writePng } from '../data/png.js';
import { lossChart, renderChartPng } from '../data/plot.js';
import { checkpointMetadata, type RunConfig } from './plan.js';
import { trainLoop, samplePicture, type LoopHooks } from './loop.js';

export type { RunConfig };

export class Run {
  constructor(readonly dir: string, readonly config: RunConfig) {}

  get checkpointDir(): string { return path.join(this.dir, 'checkpoints'); }
  checkpointFile(step: number): string { return path.join(this.checkpointDir, `step-${step}.safetensors`); }
  get metricsFile(): string { return path.join(this.dir, 'metrics.jsonl'); }
  get snapshotDir(): string { return path.join(this.dir, 'snapshots'); }

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
    if (!config || typeof config !== 'object' || !config.model || !config.data) throw new CheckpointError(`${file}: not a run's config (no model and data)`, { file });
    if (config.version !== 2 || !config.recipe) throw new CheckpointError(`${file}: a run of an earlier release (config version ${config.version ?? 'unknown'}, no recipe); sample or export its checkpoints, or start it again`, { file });
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
    const { tensors, metadata } = await trainer.checkpoint({ run: path.resolve(this.dir), ...checkpointMetadata(this.config, trainer.step, trainer.trainSeconds) });
    const file = this.checkpointFile(trainer.step);
    await writeFileAtomic(file, serializeSafetensors(tensors, metadata));
    await writeFileAtomic(path.join(this.dir, 'latest'), [new TextEncoder().encode(`${path.basename(file)}\n`)]);
    const steps = (await fs.readdir(this.checkpointDir)).map((f) => /^step-(\d+)\.safetensors$/.exec(f)).filter((m) => m).map((m) => Number(m![1])).sort((a, b) => b - a);
    for (const s of steps.slice(Math.max(1, this.config.keep))) await fs.rm(this.checkpointFile(s), { force: true });
    return file;
  }

  /** Writes the EMA weights of this step to snapshots/step-<N> (a point of the learning curve; `dit sample` reads it too). */
  async saveSnapshot(trainer: DiTTrainer): Promise<string> {
    const file = path.join(this.snapshotDir, `step-${trainer.step}.safetensors`);
    const metadata = { format: 'pt', weights: 'ema', step: String(trainer.step), config: configToJson(trainer.model.config), run: path.resolve(this.dir), ...checkpointMetadata(this.config, trainer.step, trainer.trainSeconds) };
    await writeFileAtomic(file, serializeSafetensors(await trainer.emaTensors(), metadata));
    return file;
  }

  /** The snapshots written so far, by step. */
  async snapshots(): Promise<{ step: number; file: string }[]> {
    if (!existsSync(this.snapshotDir)) return [];
    return (await fs.readdir(this.snapshotDir)).map((f) => /^step-(\d+)\.safetensors$/.exec(f)).filter((m) => m)
      .map((m) => ({ step: Number(m![1]), file: path.join(this.snapshotDir, m![0]) })).sort((a, b) => a.step - b.step);
  }

  async appendMetrics(m: StepMetrics): Promise<void> {
    await fs.appendFile(this.metricsFile, `${JSON.stringify({ step: m.step, loss: m.loss, mse: m.mse, vb: m.vb, alignment: m.alignment, lr: m.lr, grad_norm: m.gradNorm, steps_per_s: m.stepsPerSec, images_per_s: m.imagesPerSec, live_mib: m.liveMiB })}\n`);
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

export interface RunHooks {
  onMetrics?: (m: StepMetrics) => void;
  onCheckpoint?: (file: string) => void;
  onPicture?: (file: string) => void;
}

/**
 * Trains `run` with the shared loop (runs/loop.ts), writing its files: metrics every `logEvery` steps, a
 * checkpoint every `checkpointEvery` and at the end, snapshots for the learning curve, the loss plot, and
 * sample pictures (when there is a VAE). A non-finite loss stops it with a DivergenceError before anything
 * is written for that step.
 */
export async function trainRun(run: Run, trainer: DiTTrainer, vae: AutoencoderKL | null, hooks: RunHooks = {}): Promise<void> {
  const c = run.config;
  const scratch = vae ? new DiT(trainer.model.config, {}, 0) : null;
  // The loss plot at checkpoints and pictures, once per step.
  let plotted = -1;
  const plot = async (step: number) => { if (plotted !== step) await run.writeLossPlot(); plotted = step; };
  const loop: LoopHooks = {
    onMetrics: async (m) => { await run.appendMetrics(m); hooks.onMetrics?.(m); },
    onCheckpoint: async (step) => {
      const file = await run.saveCheckpoint(trainer);
      hooks.onCheckpoint?.(file);
      await plot(step);
    },
    onPicture: async (step) => {
      await plot(step);
      if (!vae || !scratch) return;
      const file = path.join(run.dir, `samples-${step}.png`);
      const d = await samplePicture(trainer, scratch, vae, c);
      await writePng(file, datasetGrid(d, c.pictures.perClass, 2));
      hooks.onPicture?.(file);
    },
    onSnapshot: async () => { await run.saveSnapshot(trainer); },
  };
  try {
    await trainLoop(trainer, c, loop);
  } finally {
    scratch?.dispose();
  }
}

export { DivergenceError };
