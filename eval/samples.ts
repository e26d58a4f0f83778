// Class-conditional samples as images: a DiT samples latents (DDPM or DDIM, classifier-free guidance), the
// VAE decodes them, and they are quantised to uint8 exactly as a PNG stores them, so samples judged in
// memory and samples read back from files score the same.
import { scope, noGrad, type Tensor } from '../engine/tensor.js';
import { scale } from '../kernels/elementwise.js';
import { imageBatch, type ImageDataset } from '../data/dataset.js';
import type { DiT } from '../dit/model.js';
import type { AutoencoderKL } from '../vae/model.js';
import { generate, loopOptions, OFFICIAL_SAMPLING, type Sampling, type StepInfo } from '../diffusion/sample.js';
import { OFFICIAL_OBJECTIVE, processFor, type Objective } from '../diffusion/objective.js';
import type { Classifier } from './classifier.js';
import { evaluateSamples, floorSet, type RealFeatures, type QualityReport } from './quality.js';
import { metadataJson } from '../engine/safetensors.js';

export interface SampleOptions {
  /** What the model was trained as (a checkpoint's recipe says; without one, the official objective). */
  objective?: Objective;
  /** How to sample (a recipe's sampling; without one, the official sample.py's). */
  sampling?: Sampling;
  seed?: number;
  /** Images sampled per GPU batch. */
  batch?: number;
  onProgress?: (done: number, total: number) => void;
  /** After every sampling step of a batch (its first index `start`): live previews of x̂0. */
  onStep?: (info: StepInfo, start: number) => void | Promise<void>;
}

/** uint8 of a [−1, 1] value, as DiT's sample.py and our PNGs: clamp(⌊127.5·x + 128⌋, 0, 255). */
export function toUint8(v: number): number { return Math.max(0, Math.min(255, Math.floor(127.5 * v + 128))); }

/** Reads a batch of decoded images, releases it, and writes it quantised into `images` from `offset`. */
async function quantiseInto(x: Tensor, images: Uint8Array, offset: number): Promise<void> {
  const data = (await x.data()) as Float32Array;
  x.dispose();
  for (let i = 0; i < data.length; i++) images[offset + i] = toUint8(data[i]);
}

/**
 * Samples an image for every entry of `labels` (class indices) and returns them as a dataset whose labels
 * are the requested classes. Latents are divided by `latentScale` before decoding.
 */
export async function sampleImages(model: DiT, vae: AutoencoderKL, latentScale: number, labels: number[], classes: string[], o: SampleOptions = {}): Promise<ImageDataset> {
  const c = model.config;
  const sampling = o.sampling ?? OFFICIAL_SAMPLING, batch = o.batch ?? 200;
  const process = processFor(o.objective ?? OFFICIAL_OBJECTIVE, sampling);
  const C = vae.config.outChannels, f = vae.downsampling, H = c.inputSize * f, W = c.inputSize * f, per = C * H * W;
  const images = new Uint8Array(labels.length * per);
  model.eval();
  for (let s = 0; s < labels.length; s += batch) {
    const part = labels.slice(s, s + batch);
    const z = await generate(model, process, part, [c.inChannels, c.inputSize, c.inputSize], {
      ...loopOptions(sampling), nullLabel: c.numClasses,
      // Each batch its own noise, reproducible from the seed.
      seed: (o.seed ?? 0) + s,
      onStep: o.onStep && ((info) => o.onStep!(info, s)),
    });
    const x = scope(() => noGrad(() => vae.decode(scale(z, 1 / latentScale))));
    z.dispose();
    await quantiseInto(x, images, s * per);
    o.onProgress?.(Math.min(s + batch, labels.length), labels.length);
  }
  return { images, labels: Uint8Array.from(labels), classes, channels: C, height: H, width: W, count: labels.length };
}

/** `perClass` labels of every class in turn: 0,0,…,1,1,… */
export function classLabels(classes: number, perClass: number): number[] {
  return Array.from({ length: classes * perClass }, (_, i) => Math.floor(i / perClass));
}

/** The VAE's reconstructions (decoded posterior means) of the images `idx` of `d`, quantised as samples are. */
export async function reconstructImages(vae: AutoencoderKL, d: ImageDataset, idx: number[], batch = 100, onProgress?: (done: number, total: number) => void): Promise<ImageDataset> {
  const per = d.channels * d.height * d.width, images = new Uint8Array(idx.length * per);
  vae.eval();
  for (let s = 0; s < idx.length; s += batch) {
    await quantiseInto(scope(() => noGrad(() => vae.forward(imageBatch(d, idx.slice(s, s + batch))))), images, s * per);
    onProgress?.(Math.min(s + batch, idx.length), idx.length);
  }
  return { images, labels: Uint8Array.from(idx, (i) => d.labels[i]), classes: d.classes, channels: d.channels, height: d.height, width: d.width, count: idx.length };
}

/**
 * The ceiling of any latent model decoded by `vae`: the scores of the VAE's reconstructions of exactly the
 * real test images that make up the floor at `perClass` per class. A model whose samples were real latents
 * would score this; the Fréchet distance above the floor is what the VAE alone loses.
 */
export async function reconstructionCeiling(judge: Classifier, vae: AutoencoderKL, test: ImageDataset, real: RealFeatures, perClass: number, onProgress?: (done: number, total: number) => void): Promise<QualityReport> {
  const K = test.classes.length;
  const idx = floorSet(real, classLabels(K, perClass), K).map((i) => real.referenceCount + i);
  return evaluateSamples(judge, await reconstructImages(vae, test, idx, 100, onProgress), real);
}

/** What a VAE file records of its ceiling at `perClass` images per class (`dit eval --reconstructions --record`, the demo). */
export type RecordedCeiling = Pick<QualityReport, 'accuracy' | 'per_class' | 'frechet' | 'frechet_real'> & { data: string };

/** The metadata key of the ceiling measured at `perClass` images per class. */
export const ceilingKey = (perClass: number) => `ceiling_${perClass}`;

/** The ceiling a VAE file records for this data and count, or null. */
export function recordedCeiling(meta: Record<string, string>, perClass: number, data: string, source = '<metadata>'): RecordedCeiling | null {
  const c = metadataJson<RecordedCeiling>(meta, ceilingKey(perClass), source);
  return c && c.data === data && Number.isFinite(c.frechet) ? c : null;
}

/** The metadata entry that records a ceiling measurement. */
export function ceilingEntry(r: QualityReport, perClass: number, data: string): Record<string, string> {
  const c: RecordedCeiling = { data, accuracy: r.accuracy, per_class: r.per_class, frechet: r.frechet, frechet_real: r.frechet_real };
  return { [ceilingKey(perClass)]: JSON.stringify(c) };
}
