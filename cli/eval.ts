// `dit eval`: the quality of samples as numbers — the judge classifier's accuracy on them (overall and per
// class) and the Fréchet distance of its features to real test images, beside the same distance for real
// images (the floor). Samples come from a folder (`dit sample --out-dir`) or are drawn from a checkpoint.
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { getDevice, describeAdapter } from '../engine/device.js';
import { writeFileAtomic } from '../engine/node.js';
import { readPngFolder, type DataSpec } from '../data/readers.js';
import { subset, type ImageDataset } from '../data/dataset.js';
import { renderChartsPng } from '../data/plot.js';
import { loadEvalData } from '../eval/judge.js';
import { evaluateSamples, formatReport } from '../eval/quality.js';
import { sampleImages, classLabels, reconstructionCeiling, ceilingEntry } from '../eval/samples.js';
import { curveCharts, curveTable, type Curve } from '../eval/curve.js';
import type { SamplerName } from '../diffusion/sample.js';
import { readVae, buildVae, recordInVaeFile } from '../vae/checkpoint.js';
import { readSampler, buildSampler, describeSampling } from '../runs/sampler.js';
import { readCurveRun, scoreCurve } from '../runs/curve.js';
import { int, choice, existing, dataOption, examples, log, checkOutputs, headsOption, samplingOptions, samplingFlags, UsageError, LIMITS } from './options.js';
import { Progress, prepareJudgeShown } from './progress.js';

interface EvalOpts {
  record?: boolean; realImages?: number; samples?: string; reconstructions?: boolean; weights?: string; curve?: string[]; out?: string; which: 'ema' | 'model'; heads?: number; vae?: string; data: DataSpec;
  perClass: number; steps?: number; cfg?: number; sampler?: SamplerName; guide?: 'all' | 'official'; cfgInterval?: [number, number]; seed: number; json?: boolean; classifier?: string; retrainClassifier?: boolean;
}

export function registerEval(program: Command): void {
  const cmd: Command = program.command('eval')
    .description('score samples: the judge classifier\'s accuracy on them and the Fréchet distance of its features to real test images, beside its floor; or a run\'s learning curve')
    .addOption(existing('--samples <dir>', 'a folder of samples, one sub-folder per class (dit sample --out-dir)'))
    .addOption(existing('--weights <ckpt-or-run>', 'or sample from this checkpoint or run folder'))
    .option('--curve <runs...>', 'or the learning curve of these run folders: every snapshot scored against its training compute; writes RUN/curve.json and RUN/curve.png (--out: the runs together)')
    .option('--reconstructions', 'or score the VAE\'s reconstructions of real test images (--vae, --per-class): the ceiling of any model decoded by that VAE')
    .addOption(choice('--which <weights>', 'of a training checkpoint: EMA or raw model weights', ['ema', 'model'], 'ema'))
    .addOption(existing('--vae <file>', 'the VAE to decode with (default: the one the run used)'))
    .addOption(headsOption())
    .addOption(dataOption())
    .addOption(int('--per-class <n>', 'samples drawn (or images reconstructed) per class with --weights, --curve (--reconstructions)', { min: 2, max: LIMITS.perClass, def: 50 }))
    .addOption(int('--seed <n>', 'noise seed', { min: 0, max: LIMITS.seed, def: 0 }))
    .addOption(int('--real-images <n>', 'use the first n real test images (default: all; half are the reference, half the floor\'s pool)', { min: 4, max: LIMITS.images }))
    .addOption(existing('--classifier <file>', 'the judge\'s weights (default: shipped in weights/, else cached, else trained once)'))
    .option('--retrain-classifier', 'train the judge again (2 epochs on the train split) and cache it')
    .option('--out <file.png>', 'with --curve: the plot of all the runs\' curves (and FILE.json)')
    .option('--record', 'with --reconstructions: write the ceiling into the VAE file\'s metadata (the demo prints it from there)')
    .option('--json', 'print {accuracy, per_class, frechet, frechet_real, samples, classifier_test_accuracy} (--curve: the curves)');
  for (const opt of samplingOptions()) cmd.addOption(opt);
  cmd.action(async (o: EvalOpts) => { process.exitCode = await runEval(o); });
  examples(cmd, [
    'dit eval --weights out/runs/quick --per-class 50',
    'dit eval --curve out/runs/quick --per-class 20',
    'dit eval --samples out/samples --data synthetic --json',
    'dit eval --reconstructions --vae out/vae-small.safetensors --per-class 50 --record',
  ]);
}

/** Reads a sample folder as a dataset whose labels are the class folders' order, checked against `classes`. */
async function readSampleFolder(dir: string, classes: string[], channels: 1 | 3): Promise<ImageDataset> {
  const folders = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  if (folders.length !== classes.length) throw new UsageError(`${dir} has ${folders.length} class folders, the dataset ${classes.length} classes (${classes.join(', ')})`);
  const d = await readPngFolder(dir, channels);
  return { ...d, classes };
}




async function runEval(o: EvalOpts): Promise<number> {
  if ([o.samples, o.weights, o.reconstructions, o.curve].filter(Boolean).length !== 1) throw new UsageError('give --samples DIR, --weights CKPT_OR_RUN, --curve RUN… or --reconstructions (one of them)');
  if (o.reconstructions && !o.vae) throw new UsageError('--reconstructions needs --vae FILE: the VAE whose reconstructions to score');
  if (o.out && !o.curve) throw new UsageError('--out is for --curve');
  if (o.record && !o.reconstructions) throw new UsageError('--record is for --reconstructions');
  if (o.record) checkOutputs({ inputs: [o.vae], outputs: [o.vae!], updates: o.vae });
  // Everything read and checked before the GPU starts.
  const data = await loadEvalData(o.data, o.realImages, log), { test } = data;
  const kind = `${o.data.kind} (${test.channels}×${test.height}×${test.width}, ${test.classes.length} classes)`;
  const vaeFile = o.reconstructions ? await readVae(o.vae!) : null;
  if (vaeFile && vaeFile.config.inChannels !== test.channels) throw new UsageError(`${o.vae} takes ${vaeFile.config.inChannels}-channel images, ${kind} has ${test.channels}`);
  const folder = o.samples ? await readSampleFolder(o.samples, test.classes, test.channels as 1 | 3) : null;
  const sampler = o.weights ? await readSampler(o.weights, { ...o, sampling: samplingFlags(o) }) : null;
  const curves = o.curve ? await Promise.all(o.curve.map((dir) => readCurveRun(dir, { vae: o.vae }))) : [];
  for (const f of [sampler, ...curves.flatMap((c) => c.snapshots)]) {
    if (!f) continue;
    if (!f.vae) throw new UsageError(`${f.file} names no VAE: give --vae`);
    if (f.config.numClasses < test.classes.length) throw new UsageError(`the model of ${f.file} has ${f.config.numClasses} classes, ${kind}`);
    if (f.vae.config.outChannels !== test.channels) throw new UsageError(`${f.vaeFile} decodes ${f.vae.config.outChannels}-channel images, ${kind}`);
  }
  if (folder) checkSampleShape(folder, test, kind);
  if (o.curve) checkOutputs({ inputs: curves.flatMap((c) => c.snapshots.map((f) => f.file)), outputs: [...o.curve.map((d) => path.join(d, 'curve.png')), ...(o.out ? [o.out, `${o.out.replace(/\.png$/, '')}.json`] : [])] });
  const g = await getDevice();
  log(`adapter: ${describeAdapter(g.adapter)}`);
  const { judge, real } = await prepareJudgeShown(o.data.kind, data, { classifier: o.classifier, retrain: o.retrainClassifier, log });
  log(`judge ${judge.file}${judge.trained ? ' (trained now)' : ''}: ${(100 * real.testAccuracy).toFixed(1)}% on the ${test.count} real test images`);
  if (vaeFile) {
    const p = new Progress('reconstructing', test.classes.length * o.perClass);
    const r = await reconstructionCeiling(judge.model, buildVae(vaeFile), test, real, o.perClass, (n) => p.update(n));
    if (o.record) await recordInVaeFile(o.vae!, ceilingEntry(r, o.perClass, o.data.kind));
    process.stdout.write(o.json ? `${JSON.stringify(r, null, 1)}\n` : `the VAE's reconstructions of the floor's real images:\n${formatReport(r)}\n${o.record ? `(recorded in ${o.vae})\n` : ''}`);
    return 0;
  }
  if (o.curve) return writeCurves(curves, o, { judge: judge.model, real, test });
  let samples: ImageDataset;
  if (folder) {
    samples = folder;
  } else {
    const s = buildSampler(sampler!);
    log(`sampling: ${describeSampling(s)}`);
    const p = new Progress('sampling', test.classes.length * o.perClass);
    samples = await sampleImages(s.model, s.vae!, s.scale, classLabels(test.classes.length, o.perClass), test.classes, { objective: s.objective, sampling: s.sampling, seed: o.seed, onProgress: (n) => p.update(n) });
    checkSampleShape(samples, test, kind);
  }
  const p3 = new Progress('judging the samples', samples.count);
  const r = await evaluateSamples(judge.model, subset(samples, samples.count), real, (n) => p3.update(n));
  if (o.json) process.stdout.write(`${JSON.stringify(r, null, 1)}\n`);
  else process.stdout.write(`${formatReport(r)}\n`);
  return 0;
}

/** --curve: scores each run's snapshots, writes RUN/curve.json and RUN/curve.png (and --out for all of them), prints the tables. */
async function writeCurves(runs: Awaited<ReturnType<typeof readCurveRun>>[], o: EvalOpts, j: { judge: Parameters<typeof scoreCurve>[1]; real: Parameters<typeof scoreCurve>[2]; test: ImageDataset }): Promise<number> {
  const done: Curve[] = [];
  for (const [i, c] of runs.entries()) {
    const p = new Progress(`scoring the snapshots of ${c.run.dir}`, c.snapshots.length);
    p.update(0);
    const curve = await scoreCurve(c, j.judge, j.real, j.test, { perClass: o.perClass, seed: o.seed, ceiling: i === 0, onPoint: (_, n) => p.update(n) });
    done.push(curve);
    await writeFileAtomic(path.join(c.run.dir, 'curve.json'), [new TextEncoder().encode(`${JSON.stringify({ ...curve, per_class: o.perClass }, null, 1)}\n`)]);
    await renderChartsPng(curveCharts([curve]), path.join(c.run.dir, 'curve.png'), 700, 420);
    if (!o.json) process.stdout.write(`${c.run.dir} (${o.perClass} samples per class; floor ${curve.floor.toFixed(3)}${curve.ceiling ? `; the VAE's ceiling ${(100 * curve.ceiling.accuracy).toFixed(1)}%, ${curve.ceiling.frechet.toFixed(2)}` : ''}):\n${curveTable(curve)}\n→ ${path.join(c.run.dir, 'curve.png')}, curve.json\n\n`);
  }
  if (o.out) {
    await renderChartsPng(curveCharts(done), o.out, 700, 420);
    await writeFileAtomic(`${o.out.replace(/\.png$/, '')}.json`, [new TextEncoder().encode(`${JSON.stringify(done, null, 1)}\n`)]);
    if (!o.json) process.stdout.write(`the curves together: ${o.out}\n`);
  }
  if (o.json) process.stdout.write(`${JSON.stringify(done, null, 1)}\n`);
  return 0;
}

/** Samples must be images of the real test images' shape. */
function checkSampleShape(samples: ImageDataset, test: ImageDataset, kind: string): void {
  if (samples.channels !== test.channels || samples.height !== test.height || samples.width !== test.width) {
    throw new UsageError(`samples are ${samples.channels}×${samples.height}×${samples.width}, ${kind}`);
  }
}
