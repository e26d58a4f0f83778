// Sample quality as numbers: the classifier's accuracy on samples (each labelled with the class it was asked
// for), per class and overall, and the Fréchet distance between its features of the samples and of real
// test images, beside the same distance between two disjoint sets of real test images at the samples'
// count (the floor: what finite samples of the real distribution itself score).
import type { ImageDataset } from '../data/dataset.js';
import { Classifier, classify, accuracy } from './classifier.js';
import { gaussianOf, frechetDistance, type Gaussian } from './frechet.js';

export interface QualityReport {
  /** Fraction of samples the classifier puts in their requested class. */
  accuracy: number;
  /** The same per class, by class name. */
  per_class: Record<string, number>;
  /** Fréchet distance, samples vs the reference half of the real test set. */
  frechet: number;
  /** Fréchet distance, as many real test images (class-balanced like the samples) vs the same reference. */
  frechet_real: number;
  samples: number;
  /** The classifier's accuracy on the whole real test split. */
  classifier_test_accuracy: number;
  reference_images: number;
}

/** What the real test split gives once per evaluation: accuracy, and features split into reference and pool. */
export interface RealFeatures {
  testAccuracy: number;
  reference: Gaussian;
  referenceCount: number;
  /** Features [n, F] and labels of the images outside the reference half, to draw the floor set from. */
  pool: { features: Float32Array; labels: Uint8Array };
  dim: number;
}

/** Classifies the whole test split: its accuracy; the first half is the reference of every Fréchet distance. */
export async function realFeatures(model: Classifier, test: ImageDataset, onProgress?: (done: number, total: number) => void): Promise<RealFeatures> {
  const r = await classify(model, test, undefined, 128, (n) => onProgress?.(n, test.count));
  const F = model.featureDim, half = Math.floor(test.count / 2);
  return {
    testAccuracy: accuracy(r.predictions, test.labels, model.config.classes).overall,
    reference: gaussianOf(r.features.subarray(0, half * F), half, F),
    referenceCount: half,
    pool: { features: r.features.subarray(half * F), labels: test.labels.subarray(half) },
    dim: F,
  };
}

/**
 * The floor set for samples with these labels: per class, the first as many images of the pool (the test
 * split's second half) as there are samples of that class. Indices into the pool; the test image of pool
 * index i is `real.referenceCount + i`.
 */
export function floorSet(real: RealFeatures, labels: ArrayLike<number>, classes: number): number[] {
  const want = new Array(classes).fill(0);
  for (let i = 0; i < labels.length; i++) want[labels[i]]++;
  const floor: number[] = [];
  const have = new Array(classes).fill(0);
  for (let i = 0; i < real.pool.labels.length && floor.length < labels.length; i++) {
    const l = real.pool.labels[i];
    if (have[l] < want[l]) { have[l]++; floor.push(i); }
  }
  if (floor.length < labels.length) throw new Error(`the test split's second half has too few images per class for ${labels.length} samples (at most ${floor.length})`);
  return floor;
}

/**
 * Scores `samples` (uint8 images as the PNGs hold them, labels = requested classes) against the real
 * features. The floor set takes, per class, as many pool images as there are samples of that class.
 */
export async function evaluateSamples(model: Classifier, samples: ImageDataset, real: RealFeatures, onProgress?: (done: number, total: number) => void): Promise<QualityReport> {
  const K = model.config.classes, F = real.dim;
  if (samples.count < 2) throw new Error(`need at least 2 samples to score, got ${samples.count}`);
  const floor = floorSet(real, samples.labels, K);
  const r = await classify(model, samples, undefined, 128, (n) => onProgress?.(n, samples.count));
  const acc = accuracy(r.predictions, samples.labels, K);
  const want = new Array(K).fill(0);
  for (const l of samples.labels) want[l]++;
  const floorFeatures = new Float32Array(floor.length * F);
  floor.forEach((i, k) => floorFeatures.set(real.pool.features.subarray(i * F, (i + 1) * F), k * F));
  const per_class: Record<string, number> = {};
  samples.classes.forEach((c, k) => { if (want[k]) per_class[c] = acc.perClass[k]; });
  return {
    accuracy: acc.overall,
    per_class,
    frechet: frechetDistance(gaussianOf(r.features, samples.count, F), real.reference),
    frechet_real: frechetDistance(gaussianOf(floorFeatures, floor.length, F), real.reference),
    samples: samples.count,
    classifier_test_accuracy: real.testAccuracy,
    reference_images: real.referenceCount,
  };
}

/** The report in three lines: accuracy, per class, Fréchet distance beside its floor. */
export function formatReport(r: QualityReport): string {
  const classes = Object.entries(r.per_class).map(([c, a]) => `${c} ${(100 * a).toFixed(0)}%`).join(', ');
  return [
    `accuracy ${(100 * r.accuracy).toFixed(1)}% over ${r.samples} samples (the judge: ${(100 * r.classifier_test_accuracy).toFixed(1)}% on real test images)`,
    `  per class: ${classes}`,
    `Fréchet distance ${r.frechet.toFixed(2)}, floor ${r.frechet_real.toFixed(2)} (real test images, same count) — ${(r.frechet / r.frechet_real).toFixed(2)}× the floor`,
  ].join('\n');
}
