// The classifier that judges a dataset's samples, found or made once (Node): the weights shipped in
// weights/classifier-<data>.safetensors or cached in .cache/classifier/<fingerprint>.safetensors, used only
// when their recorded fingerprint matches the train split's; otherwise trained and cached.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors } from '../engine/safetensors.js';
import { fingerprint, subset, type ImageDataset } from '../data/dataset.js';
import { loadDataset, type DataSpec } from '../data/readers.js';
import { Classifier, CLASSIFIER_WIDTHS, classifierFromSafetensors, saveClassifier, trainClassifier } from './classifier.js';
import { realFeatures, type RealFeatures } from './quality.js';

/** The repository's folder of small shipped weight files. */
export const WEIGHTS_DIR = fileURLToPath(new URL('../../weights', import.meta.url));

export interface Judge { model: Classifier; file: string; trained: boolean; metadata: Record<string, string> }

/** The command that trains a dataset's classifier (written beside the weights). */
export const classifierCommand = (data: string) => `dit eval --data ${data} --retrain-classifier (2 epochs, batch 64, AdamW lr 2e-3 cosine, seed 0)`;

export async function judgeFor(dataName: string, train: ImageDataset, o: { retrain?: boolean; file?: string; cacheDir?: string; log?: (m: string) => void; onProgress?: (step: number, steps: number, loss: number) => void } = {}): Promise<Judge> {
  const fp = fingerprint(train);
  const cached = path.join(o.cacheDir ?? '.cache/classifier', `${fp}.safetensors`);
  const candidates = o.file ? [o.file] : [path.join(WEIGHTS_DIR, `classifier-${dataName}.safetensors`), cached];
  if (!o.retrain) {
    for (const f of candidates) {
      if (!existsSync(f)) continue;
      const st = await readSafetensors(f);
      if (st.metadata.fingerprint !== fp) {
        if (o.file) throw new Error(`${f} was trained on other data (fingerprint ${st.metadata.fingerprint}, this train split ${fp})`);
        o.log?.(`${f}: trained on other data (fingerprint ${st.metadata.fingerprint} ≠ ${fp}), not used`);
        continue;
      }
      const { model, metadata } = classifierFromSafetensors(st);
      return { model, file: f, trained: false, metadata };
    }
  }
  o.log?.(`training the ${dataName} classifier on ${train.count} images (once; cached as ${cached})`);
  const model = new Classifier({ channels: train.channels, classes: train.classes.length, widths: CLASSIFIER_WIDTHS, imageSize: train.height }, 0);
  const r = await trainClassifier(model, train, { epochs: 2, batch: 64, lr: 2e-3, seed: 0, onLog: (m) => o.onProgress?.(m.step, m.steps, m.loss) });
  const metadata = { fingerprint: fp, data: dataName, train_seconds: r.seconds.toFixed(0), command: classifierCommand(dataName) };
  await saveClassifier(model, cached, metadata);
  return { model, file: cached, trained: true, metadata };
}

/** A dataset's train split (the judge's) and test split (its first `realImages`), read before any GPU work. */
export async function loadEvalData(spec: DataSpec, realImages?: number, log?: (m: string) => void): Promise<{ train: ImageDataset; test: ImageDataset }> {
  const train = await loadDataset(spec, 'train', { onProgress: (m) => log?.(`  ${m}`) }), fullTest = await loadDataset(spec, 'test');
  return { train, test: realImages ? subset(fullTest, realImages) : fullTest };
}

/** The judge of a dataset (judgeFor) and the features of its real test images, which every score is measured against. */
export async function prepareJudge(dataName: string, { train, test }: { train: ImageDataset; test: ImageDataset }, o: Parameters<typeof judgeFor>[2] & { onJudging?: (done: number, total: number) => void } = {}): Promise<{ judge: Judge; real: RealFeatures }> {
  const judge = await judgeFor(dataName, train, o);
  return { judge, real: await realFeatures(judge.model, test, o.onJudging) };
}
