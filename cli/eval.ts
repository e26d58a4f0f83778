// `dit eval`: the quality of samples as numbers — the judge classifier's accuracy on them (overall and per
// class) and the Fréchet distance of its features to real test images, beside the same distance for real
// images (the floor). Samples come from a folder (`dit sample --out-dir`) or are drawn from a checkpoint.
import { readdirSync } from 'node:fs';
import { Command } from 'commander';
import { getDevice, describeAdapter } from '../engine/device.js';
import { loadDataset, readPngFolder, type DataSpec } from '../data/readers.js';
import { subset, type ImageDataset } from '../data/dataset.js';
import { judgeFor, type Judge } from '../eval/judge.js';
import { realFeatures, evaluateSamples, type QualityReport } from '../eval/quality.js';
import { sampleImages, classLabels, reconstructionCeiling } from '../eval/samples.js';
import { readVae, buildVae } from '../vae/checkpoint.js';
import { int, num, choice, existing, dataOption, examples, log, UsageError, LIMITS } from './options.js';
import { readSampler, buildSampler, samplingSettings, headsOption } from './sample.js';
import type { Preset } from '../dit/presets.js';
import { Progress } from './progress.js';

/** Without a preset: a quick, well-conditioned sampler. */
const EVAL_DEFAULTS: Preset['sample'] = { sampler: 'ddim', steps: 50, cfg: 3 };

interface EvalOpts { realImages?: number; samples?: string; reconstructions?: boolean; weights?: string; which: 'ema' | 'model'; heads?: number; vae?: string; data: DataSpec; perClass: number; steps?: number; cfg?: number; sampler?: 'ddpm' | 'ddim'; seed: number; json?: boolean; classifier?: string; retrainClassifier?: boolean }

export function registerEval(program: Command): void {
  const cmd = program.command('eval')
    .description('score samples: the judge classifier\'s accuracy on them and the Fréchet distance of its features to real test images, beside its floor')
    .addOption(existing('--samples <dir>', 'a folder of samples, one sub-folder per class (dit sample --out-dir)'))
    .addOption(existing('--weights <ckpt-or-run>', 'or sample from this checkpoint or run folder'))
    .option('--reconstructions', 'or score the VAE\'s reconstructions of real test images (--vae, --per-class): the ceiling of any model decoded by that VAE')
    .addOption(choice('--which <weights>', 'of a training checkpoint: EMA or raw model weights', ['ema', 'model'], 'ema'))
    .addOption(existing('--vae <file>', 'the VAE to decode with (default: the one the run used)'))
    .addOption(headsOption())
    .addOption(dataOption())
    .addOption(int('--per-class <n>', 'samples drawn (or images reconstructed) per class with --weights (--reconstructions)', { min: 2, max: LIMITS.perClass, def: 50 }))
    .addOption(int('--steps <n>', `sampling steps with --weights [default: the preset's the weights were trained with, else ${EVAL_DEFAULTS.steps}]`, { min: 1, max: 1000 }))
    .addOption(num('--cfg <scale>', `guidance scale with --weights [default: the preset's, else ${EVAL_DEFAULTS.cfg}]`, { min: 0 }))
    .addOption(choice('--sampler <name>', `sampler with --weights [default: the preset's, else ${EVAL_DEFAULTS.sampler}]`, ['ddpm', 'ddim']))
    .addOption(int('--seed <n>', 'noise seed', { min: 0, max: LIMITS.seed, def: 0 }))
    .addOption(int('--real-images <n>', 'use the first n real test images (default: all; half are the reference, half the floor\'s pool)', { min: 4, max: LIMITS.images }))
    .addOption(existing('--classifier <file>', 'the judge\'s weights (default: shipped in weights/, else cached, else trained once)'))
    .option('--retrain-classifier', 'train the judge again (2 epochs on the train split) and cache it')
    .option('--json', 'print {accuracy, per_class, frechet, frechet_real, samples, classifier_test_accuracy}')
    .action(async (o: EvalOpts) => { process.exitCode = await runEval(o); });
  examples(cmd, [
    'dit eval --weights out/runs/quick --per-class 50',
    'dit eval --samples out/samples --data synthetic --json',
    'dit eval --reconstructions --vae out/vae-small.safetensors --per-class 50',
  ]);
}

/** Reads a sample folder as a dataset whose labels are the class folders' order, checked against `classes`. */
async function readSampleFolder(dir: string, classes: string[], channels: 1 | 3): Promise<ImageDataset> {
  const folders = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  if (folders.length !== classes.length) throw new UsageError(`${dir} has ${folders.length} class folders, the dataset ${classes.length} classes (${classes.join(', ')})`);
  const d = await readPngFolder(dir, channels);
  return { ...d, classes };
}

/** A dataset's train split (the judge's) and test split (its first `realImages`), read before any GPU work. */
export async function loadEvalData(spec: DataSpec, realImages?: number): Promise<{ train: ImageDataset; test: ImageDataset }> {
  const train = await loadDataset(spec, 'train', { onProgress: (m) => log(`  ${m}`) }), fullTest = await loadDataset(spec, 'test');
  return { train, test: realImages ? subset(fullTest, realImages) : fullTest };
}

/** Judge + real-test features for a dataset, with progress. */
export async function prepareJudge(spec: DataSpec, { train, test }: { train: ImageDataset; test: ImageDataset }, o: { classifier?: string; retrain?: boolean }): Promise<{ judge: Judge; real: Awaited<ReturnType<typeof realFeatures>> }> {
  let progress: Progress | null = null;
  const judge = await judgeFor(spec.kind, train, {
    file: o.classifier, retrain: o.retrain, log,
    onProgress: (step, steps, loss) => { (progress ??= new Progress('training the judge', steps)).update(step, `loss ${loss.toFixed(3)}`); },
  });
  const p2 = new Progress('judging the real test images', test.count);
  const real = await realFeatures(judge.model, test, (n) => p2.update(n));
  return { judge, real };
}

export function formatReport(r: QualityReport): string {
  const classes = Object.entries(r.per_class).map(([c, a]) => `${c} ${(100 * a).toFixed(0)}%`).join(', ');
  return [
    `accuracy ${(100 * r.accuracy).toFixed(1)}% over ${r.samples} samples (the judge: ${(100 * r.classifier_test_accuracy).toFixed(1)}% on real test images)`,
    `  per class: ${classes}`,
    `Fréchet distance ${r.frechet.toFixed(2)}, floor ${r.frechet_real.toFixed(2)} (real test images, same count) — ${(r.frechet / r.frechet_real).toFixed(2)}× the floor`,
  ].join('\n');
}

async function runEval(o: EvalOpts): Promise<number> {
  if ([o.samples, o.weights, o.reconstructions].filter(Boolean).length !== 1) throw new UsageError('give --samples DIR, --weights CKPT_OR_RUN or --reconstructions (one of them)');
  if (o.reconstructions && !o.vae) throw new UsageError('--reconstructions needs --vae FILE: the VAE whose reconstructions to score');
  // Everything read and checked before the GPU starts.
  const data = await loadEvalData(o.data, o.realImages), { test } = data;
  const kind = `${o.data.kind} (${test.channels}×${test.height}×${test.width}, ${test.classes.length} classes)`;
  const vaeFile = o.reconstructions ? await readVae(o.vae!) : null;
  if (vaeFile && vaeFile.config.inChannels !== test.channels) throw new UsageError(`${o.vae} takes ${vaeFile.config.inChannels}-channel images, ${kind} has ${test.channels}`);
  const folder = o.samples ? await readSampleFolder(o.samples, test.classes, test.channels as 1 | 3) : null;
  const sampler = o.weights ? await readSampler(o.weights, o) : null;
  if (sampler) {
    if (!sampler.vae) throw new UsageError(`${sampler.file} names no VAE: give --vae`);
    if (sampler.config.numClasses < test.classes.length) throw new UsageError(`the model of ${sampler.file} has ${sampler.config.numClasses} classes, ${kind}`);
    if (sampler.vae.config.outChannels !== test.channels) throw new UsageError(`${sampler.vaeFile} decodes ${sampler.vae.config.outChannels}-channel images, ${kind}`);
  }
  if (folder) checkSampleShape(folder, test, kind);
  const g = await getDevice();
  log(`adapter: ${describeAdapter(g.adapter)}`);
  const { judge, real } = await prepareJudge(o.data, data, { classifier: o.classifier, retrain: o.retrainClassifier });
  log(`judge ${judge.file}${judge.trained ? ' (trained now)' : ''}: ${(100 * real.testAccuracy).toFixed(1)}% on the ${test.count} real test images`);
  if (vaeFile) {
    const p = new Progress('reconstructing', test.classes.length * o.perClass);
    const r = await reconstructionCeiling(judge.model, buildVae(vaeFile), test, real, o.perClass, (n) => p.update(n));
    process.stdout.write(o.json ? `${JSON.stringify(r, null, 1)}\n` : `the VAE's reconstructions of the floor's real images:\n${formatReport(r)}\n`);
    return 0;
  }
  let samples: ImageDataset;
  if (folder) {
    samples = folder;
  } else {
    const s = buildSampler(sampler!);
    const { sampler: method, steps, cfg } = samplingSettings(o, s, EVAL_DEFAULTS);
    log(`sampling: ${method} ${steps} steps, guidance ${cfg}${s.preset ? ` (the weights' preset: ${s.preset.name})` : ''}`);
    const p = new Progress('sampling', test.classes.length * o.perClass);
    samples = await sampleImages(s.model, s.vae!, s.scale, classLabels(test.classes.length, o.perClass), test.classes, { sampler: method, steps, cfg, seed: o.seed, schedule: s.schedule, onProgress: (n) => p.update(n) });
    checkSampleShape(samples, test, kind);
  }
  const p3 = new Progress('judging the samples', samples.count);
  const r = await evaluateSamples(judge.model, subset(samples, samples.count), real, (n) => p3.update(n));
  if (o.json) process.stdout.write(`${JSON.stringify(r, null, 1)}\n`);
  else process.stdout.write(`${formatReport(r)}\n`);
  return 0;
}

/** Samples must be images of the real test images' shape. */
function checkSampleShape(samples: ImageDataset, test: ImageDataset, kind: string): void {
  if (samples.channels !== test.channels || samples.height !== test.height || samples.width !== test.width) {
    throw new UsageError(`samples are ${samples.channels}×${samples.height}×${samples.width}, ${kind}`);
  }
}
