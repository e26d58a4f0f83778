// A run's learning curve: every snapshot it kept (runs/run.ts) sampled with its recipe and judged as
// `dit eval --weights` judges one checkpoint, placed at the training compute, images and time its metadata
// records; the floor and the VAE's ceiling measured on the same real images.
import * as path from 'node:path';
import type { Classifier } from '../eval/classifier.js';
import { evaluateSamples, type RealFeatures } from '../eval/quality.js';
import { sampleImages, classLabels, reconstructionCeiling } from '../eval/samples.js';
import type { Curve, CurvePoint } from '../eval/curve.js';
import type { ImageDataset } from '../data/dataset.js';
import { CheckpointError } from '../engine/errors.js';
import { Run } from './run.js';
import { readSampler, buildSampler, type SamplerFiles } from './sampler.js';

/** A run's snapshots, read on the host (before any GPU work). */
export async function readCurveRun(dir: string, o: { vae?: string } = {}): Promise<{ run: Run; snapshots: SamplerFiles[] }> {
  const run = await Run.open(dir);
  const files = await run.snapshots();
  if (!files.length) throw new CheckpointError(`${dir}: the run kept no snapshots (dit train --snapshots N keeps them; runs of earlier releases have none)`, { file: dir });
  const snapshots: SamplerFiles[] = [];
  for (const f of files) snapshots.push(await readSampler(f.file, { which: 'ema', vae: o.vae }));
  if (!snapshots[0].vae) throw new CheckpointError(`${dir}: the run names no VAE to decode its samples with: give --vae`, { file: dir });
  return { run, snapshots };
}

/** Scores every snapshot: `perClass` samples of every class each, the same noise seed for all (so the floor, the same real images at that count, is one). */
export async function scoreCurve(c: { run: Run; snapshots: SamplerFiles[] }, judge: Classifier, real: RealFeatures, test: ImageDataset, o: { perClass: number; seed: number; ceiling: boolean; onPoint?: (p: CurvePoint, done: number, total: number) => void }): Promise<Curve> {
  const points: CurvePoint[] = [];
  const K = test.classes.length;
  let floor = NaN;
  for (const [i, f] of c.snapshots.entries()) {
    const s = buildSampler(f);
    try {
      const d = await sampleImages(s.model, s.vae!, s.scale, classLabels(K, o.perClass), test.classes, { objective: s.objective, sampling: s.sampling, seed: o.seed });
      const r = await evaluateSamples(judge, d, real);
      floor = r.frechet_real;
      const m = f.dit.metadata;
      const p: CurvePoint = {
        step: Number(m.step), images: Number(m.images_seen), multiplyAdds: Number(m.train_multiply_adds),
        minutes: m.train_seconds ? Number(m.train_seconds) / 60 : null, accuracy: r.accuracy, frechet: r.frechet,
      };
      points.push(p);
      o.onPoint?.(p, i + 1, c.snapshots.length);
    } finally {
      s.model.dispose();
      s.vae?.dispose();
    }
  }
  let ceiling: Curve['ceiling'] = null;
  if (o.ceiling) {
    const s = buildSampler(c.snapshots[0]);
    const r = await reconstructionCeiling(judge, s.vae!, test, real, o.perClass);
    s.model.dispose();
    s.vae?.dispose();
    ceiling = { accuracy: r.accuracy, frechet: r.frechet };
  }
  return { label: path.basename(path.resolve(c.run.dir)), points, floor, ceiling };
}
