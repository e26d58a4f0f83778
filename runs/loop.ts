// The training loop every front end shares — `dit train`, `dit demo` and the browser page: it decides which
// steps log, checkpoint and draw pictures, makes sure training is still finite before anything is saved, and
// hands the rest to hooks (a run folder's files in runs/run.ts; the page's chart, canvas and download).
// No Node imports: the page runs it as it is.
import type { DiT } from '../dit/model.js';
import type { DiTTrainer, StepMetrics } from '../dit/train.js';
import type { AutoencoderKL } from '../vae/model.js';
import { sampleImages, classLabels } from '../eval/samples.js';
import type { ImageDataset } from '../data/dataset.js';
import { snapshotSteps, type RunConfig } from './plan.js';

export interface LoopHooks {
  /** Before every step (the page waits here while paused). */
  beforeStep?: () => void | Promise<void>;
  /** After a logged step, once its loss is known to be finite. */
  onMetrics?: (m: StepMetrics) => void | Promise<void>;
  /** At a checkpoint step, once every step so far is known to be finite: save the trainer's state. */
  onCheckpoint?: (step: number) => void | Promise<void>;
  /** At a picture step: draw samples (samplePicture) and show or write them. */
  onPicture?: (step: number) => void | Promise<void>;
  /** At a snapshot step (snapshotSteps), once every step so far is known to be finite: keep the EMA weights for the learning curve. */
  onSnapshot?: (step: number) => void | Promise<void>;
}

/**
 * Trains until `trainer.config.steps`: metrics every `logEvery` steps, a checkpoint every `checkpointEvery`
 * and at the end, pictures every `pictures.every` steps (0: only at the end) and at the end, snapshots at
 * `snapshots` evenly spaced steps. A non-finite loss or gradient stops it with a DivergenceError before
 * anything is saved for that step.
 */
export async function trainLoop(trainer: DiTTrainer, c: Pick<RunConfig, 'logEvery' | 'checkpointEvery' | 'pictures' | 'snapshots'>, hooks: LoopHooks = {}): Promise<void> {
  const total = trainer.config.steps;
  const snapshots = new Set(snapshotSteps(total, c.snapshots));
  while (trainer.step < total) {
    await hooks.beforeStep?.();
    const next = trainer.step + 1;
    const log = next % c.logEvery === 0 || next === total;
    const ckpt = next % c.checkpointEvery === 0 || next === total;
    const pics = (c.pictures.every > 0 && next % c.pictures.every === 0) || next === total;
    const snap = snapshots.has(next) && !!hooks.onSnapshot;
    trainer.trainStep(log);
    if (log) {
      const m = await trainer.metrics();
      await trainer.checkFinite();
      await hooks.onMetrics?.(m);
    }
    if (ckpt || snap) await trainer.checkFinite();
    if (ckpt) await hooks.onCheckpoint?.(trainer.step);
    if (snap) await hooks.onSnapshot?.(trainer.step);
    if (pics) await hooks.onPicture?.(trainer.step);
    // Saving and sampling are not training: the next speed reading starts after them.
    if (ckpt || pics || snap) trainer.resetClock();
  }
}

/**
 * The run's picture of the moment: `perClass` samples of every class from the EMA weights (copied into
 * `scratch`, a model of the same config, so training is untouched), with the recipe's sampling and fixed noise.
 */
export async function samplePicture(trainer: DiTTrainer, scratch: DiT, vae: AutoencoderKL, c: RunConfig, perClass = c.pictures.perClass): Promise<ImageDataset> {
  trainer.useEma(scratch);
  return sampleImages(scratch, vae, c.data.scaleFactor, classLabels(c.model.numClasses, perClass), c.data.classes, { objective: c.recipe.objective, sampling: c.recipe.sampling, seed: PICTURE_SEED });
}

/** The pictures' noise seed: the same samples at every step, so the pictures show the model changing. */
const PICTURE_SEED = 1234;
