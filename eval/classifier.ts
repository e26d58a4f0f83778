// The judge of sample quality: a small convolutional classifier built with the engine (Conv2d, GroupNorm,
// Linear; trained by its autograd and AdamW) on a dataset's train split. Its accuracy on real test images
// says whether it may judge; its accuracy on generated samples (each labelled with the class it was asked
// for) and the Fréchet distance of its penultimate features are the scores `dit eval` reports.
import { Tensor, scope, noGrad, keep } from '../engine/tensor.js';
import { backward } from '../engine/autograd.js';
import { Module, ModuleList } from '../nn/module.js';
import { Linear, Conv2d, GroupNorm } from '../nn/layers.js';
import { AdamW, learningRate } from '../nn/optim.js';
import { crossEntropy } from '../nn/losses.js';
import { Generator, deriveSeed } from '../kernels/random.js';
import { mean } from '../kernels/reduce.js';
import { avgPool2x } from '../kernels/conv2d.js';
import { imageBatch, type ImageDataset } from '../data/dataset.js';
import { metadataJson, refuseNonFinite, writeSafetensors, type Safetensors } from '../engine/safetensors.js';
import { CheckpointError } from '../engine/errors.js';

export interface ClassifierConfig {
  channels: number;
  classes: number;
  /** Widths of the stages; every stage after the first starts with a 2×2 average pooling. */
  widths: number[];
  imageSize: number;
}

export const CLASSIFIER_WIDTHS = [16, 32, 64, 128];

/**
 * Stages of two conv3×3 + GroupNorm + SiLU, each stage after the first starting with a 2×2 average pooling
 * (stride-1 convolutions only: their backward is the fast direct kernel); global average pooling gives the
 * features, a linear layer the logits.
 */
export class Classifier extends Module {
  readonly convs: ModuleList<Conv2d>;
  readonly norms: ModuleList<GroupNorm>;
  readonly head: Linear;
  /** Whether conv i starts a new stage (pooled input). */
  readonly pooled: boolean[] = [];

  constructor(readonly config: ClassifierConfig, seed = 0) {
    super();
    const gen = new Generator(seed);
    const w = config.widths;
    const convs: Conv2d[] = [];
    w.forEach((width, s) => {
      convs.push(new Conv2d(s === 0 ? config.channels : w[s - 1], width, 3, gen));
      convs.push(new Conv2d(width, width, 3, gen));
      this.pooled.push(s > 0, false);
    });
    this.convs = this.module('convs', new ModuleList(convs));
    this.norms = this.module('norms', new ModuleList(convs.map((c) => new GroupNorm(8, c.weight.shape[0]))));
    this.head = this.module('head', new Linear(w[w.length - 1], config.classes, gen));
    this.nameParameters();
  }

  get featureDim(): number { return this.config.widths[this.config.widths.length - 1]; }

  /** Penultimate features [B, F] of images [B, C, H, W] in [−1, 1]. */
  features(x: Tensor): Tensor {
    let h = x;
    this.convs.items.forEach((c, i) => { h = this.norms.items[i].forward(c.forward(this.pooled[i] ? avgPool2x(h) : h), true); });
    return mean(h, [2, 3]);
  }

  forward(x: Tensor): Tensor { return this.head.forward(this.features(x)); }
}

export interface ClassifierTrainOptions {
  epochs?: number;
  batch?: number;
  lr?: number;
  seed?: number;
  onLog?: (m: { step: number; steps: number; loss: number; secs: number }) => void;
}

/** An image classifier built with the engine: images [B, C, H, W] in [−1, 1] → logits [B, classes]. */
export interface ImageClassifier extends Module { forward(x: Tensor): Tensor }

/** Trains an image classifier (the judge, or the alignment teacher) on `train` with random flips, AdamW and a warm-up + cosine schedule. */
export async function trainClassifier(model: ImageClassifier, train: ImageDataset, o: ClassifierTrainOptions = {}): Promise<{ seconds: number; steps: number }> {
  const B = o.batch ?? 64, epochs = o.epochs ?? 2, seed = o.seed ?? 0;
  const perEpoch = Math.floor(train.count / B), steps = epochs * perEpoch;
  const opt = new AdamW(model.parameters(), { lr: o.lr ?? 2e-3, weightDecay: 0.01 });
  const order = new Generator(deriveSeed(seed, 'classifier.order')), flips = new Generator(deriveSeed(seed, 'classifier.flip'));
  const flip = () => flips.randHost(1)[0];
  const t0 = performance.now();
  model.train();
  let step = 0;
  for (let e = 0; e < epochs; e++) {
    // A fresh permutation of the training set every epoch.
    const perm = Array.from({ length: train.count }, (_, i) => i);
    const r = order.randHost(train.count);
    for (let i = perm.length - 1; i > 0; i--) { const j = Math.floor(r[i] * (i + 1)); [perm[i], perm[j]] = [perm[j], perm[i]]; }
    for (let k = 0; k < perEpoch; k++) {
      step++;
      opt.lr = learningRate({ lr: o.lr ?? 2e-3, warmup: 100, decay: 'cosine', totalSteps: steps }, step);
      const idx = perm.slice(k * B, (k + 1) * B);
      const loss = scope(() => {
        const l = crossEntropy(model.forward(imageBatch(train, idx, flip)), idx.map((i) => train.labels[i]));
        backward(l);
        opt.step();
        opt.zeroGrad();
        return l;
      });
      if (step % 50 === 0 || step === steps) o.onLog?.({ step, steps, loss: await loss.item(), secs: (performance.now() - t0) / 1000 });
      loss.dispose();
    }
  }
  opt.dispose();
  model.eval();
  return { seconds: (performance.now() - t0) / 1000, steps };
}

export interface Classified {
  /** Predicted class per image. */
  predictions: Int32Array;
  /** Penultimate features, [count, featureDim] row-major. */
  features: Float32Array;
}

/** Predictions and features for the images `idx` of `d` (all by default). */
export async function classify(model: Classifier, d: ImageDataset, idx?: number[], batch = 128, onProgress?: (done: number) => void): Promise<Classified> {
  const which = idx ?? Array.from({ length: d.count }, (_, i) => i);
  const F = model.featureDim, K = model.config.classes;
  const predictions = new Int32Array(which.length), features = new Float32Array(which.length * F);
  model.eval();
  for (let s = 0; s < which.length; s += batch) {
    const part = which.slice(s, s + batch);
    const [f, logits] = scope(() => noGrad(() => {
      const feats = model.features(imageBatch(d, part));
      return [keep(feats), keep(model.head.forward(feats))];
    }));
    const fv = (await f.data()) as Float32Array, lv = (await logits.data()) as Float32Array;
    f.dispose(); logits.dispose();
    features.set(fv, s * F);
    for (let b = 0; b < part.length; b++) {
      let best = 0;
      for (let k = 1; k < K; k++) if (lv[b * K + k] > lv[b * K + best]) best = k;
      predictions[s + b] = best;
    }
    onProgress?.(Math.min(s + batch, which.length));
  }
  return { predictions, features };
}

/** Fraction of `labels` that `predictions` get right, overall and per class. */
export function accuracy(predictions: ArrayLike<number>, labels: ArrayLike<number>, classes: number): { overall: number; perClass: number[] } {
  const right = new Array(classes).fill(0), total = new Array(classes).fill(0);
  let ok = 0;
  for (let i = 0; i < labels.length; i++) {
    total[labels[i]]++;
    if (predictions[i] === labels[i]) { right[labels[i]]++; ok++; }
  }
  return { overall: ok / Math.max(1, labels.length), perClass: right.map((r, k) => (total[k] ? r / total[k] : NaN)) };
}

/** Writes a network's weights with its `format` tag, its config and `meta`; refuses non-finite weights (`what` names the network). */
export async function saveNetwork(m: Module & { config: object }, file: string, format: string, what: string, meta: Record<string, string>): Promise<void> {
  const tensors = await m.hostStateDict();
  refuseNonFinite(tensors, `${what} (${file})`);
  await writeSafetensors(file, tensors, { format, config: JSON.stringify(m.config), ...meta });
}

/** The network `make` builds from a `saveNetwork` file of `format`, with its weights, in eval mode. */
export function loadNetwork<C, M extends Module>(st: Safetensors, format: string, what: string, make: (config: C) => M): M {
  const config = metadataJson<C>(st.metadata, 'config', st.source);
  if (st.metadata.format !== format || !config) throw new CheckpointError(`${st.source}: not ${what} of this project (no format/config metadata)`, { file: st.source });
  const m = make(config);
  m.loadStateDict(new Map(st.keys().map((k) => [k, { shape: st.shape(k), data: st.finiteF32(k) }])), { source: st.source });
  m.eval();
  return m;
}

/** Writes the classifier's weights with its config and `meta` (the data fingerprint, test accuracy, command); refuses non-finite weights. */
export const saveClassifier = (model: Classifier, file: string, meta: Record<string, string>) => saveNetwork(model, file, 'dit-webgpu-classifier', 'the judge classifier', meta);

/** A classifier from `saveClassifier`'s file (bytes), with its metadata. */
export function classifierFromSafetensors(st: Safetensors): { model: Classifier; metadata: Record<string, string> } {
  return { model: loadNetwork(st, 'dit-webgpu-classifier', 'a classifier', (c: ClassifierConfig) => new Classifier(c, 0)), metadata: st.metadata };
}
