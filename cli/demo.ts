// `dit demo`, the README's main job: the adapter and parity with the official PyTorch dumps, then on a
// dataset (built in, or Fashion-MNIST) the small VAE → latents → the `quick` preset DiT → samples → `dit
// eval`, ending with the accuracy, the Fréchet distance beside its floor, the time of each stage and the
// pictures. The VAE and the judge classifier ship in weights/ (trained by the commands in weights/README.md);
// --fresh trains everything here.
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { getDevice, describeAdapter } from '../engine/device.js';
import { readSafetensors } from '../engine/safetensors.js';
import { readFileBytes, writeFileAtomic } from '../engine/node.js';
import { verifyReference } from '../verify/index.js';
import { loadDataset, type DataSpec } from '../data/readers.js';
import { writeClassGrid, writeClassFolders, datasetGrid, subset, fingerprint, type ImageDataset } from '../data/dataset.js';
import { writePng } from '../data/png.js';
import { crc32 } from '../engine/checksum.js';
import { AutoencoderKL, SMALL_VAE_32 } from '../vae/model.js';
import { loadVae, recordInVaeFile, recordedPsnr, psnrEntries } from '../vae/checkpoint.js';
import { trainVae, encodeDataset, psnr, saveVae, reconstructionGrid } from '../vae/train.js';
import { DiT } from '../dit/model.js';
import { LatentSet, DiTTrainer } from '../dit/train.js';
import { RECIPES, type RecipeName } from '../dit/recipes.js';
import { Run, trainRun, resumeInto } from '../runs/run.js';
import { planRun, dataInfo, trainMultiplyAdds } from '../runs/plan.js';
import { sampleImages, classLabels, reconstructionCeiling, recordedCeiling, ceilingEntry } from '../eval/samples.js';
import { evaluateSamples, formatReport } from '../eval/quality.js';
import { WEIGHTS_DIR } from '../eval/judge.js';
import { Teacher, TEACHER_32, TEACHER_TRAINING, teacherFeatures, teacherFromSafetensors, saveTeacher } from '../eval/teacher.js';
import { trainClassifier } from '../eval/classifier.js';
import { choice, dataOption, dataDir, examples, log, checkOutputs } from './options.js';
import { Progress, prepareJudgeShown } from './progress.js';

interface DemoOpts { data: DataSpec; preset: DemoPreset; out?: string; fresh?: boolean; quick?: boolean; measure?: boolean; referenceDir?: string }

/** The presets sized for this machine's CPU. */
const DEMO_PRESETS = ['quick', 'long'] as const satisfies readonly RecipeName[];
type DemoPreset = typeof DEMO_PRESETS[number];

/** The lengths of the real job and of the short one CI runs. */
const LENGTHS: Record<'full' | 'quick', { latents: number; samplesPerClass: number; vae: { l1: number; mse: number }; ditSteps: number | null }> = {
  full: { latents: 20000, samplesPerClass: 50, vae: { l1: 500, mse: 1000 }, ditSteps: null },
  quick: { latents: 4000, samplesPerClass: 10, vae: { l1: 120, mse: 120 }, ditSteps: 300 },
};

export function registerDemo(program: Command): void {
  const cmd = program.command('demo')
    .description('the main job: parity check, then VAE → latents → DiT (a preset, quick by default) → samples → dit eval on a dataset; prints the scores and writes DIR/summary.json')
    .addOption(dataOption())
    .addOption(choice('--preset <name>', `the DiT recipe and its sampler (${DEMO_PRESETS.map((n) => `${n}: ${RECIPES[n].description}`).join('; ')})`, DEMO_PRESETS, 'quick'))
    .option('--out <dir>', 'output folder (default out/<data>)')
    .option('--fresh', 'train the VAE and the judge here too, and everything after them, instead of reusing')
    .option('--quick', 'the short version CI runs (also when CI=true)')
    .option('--measure', 'measure the VAE\'s PSNR (all test images) and ceiling again instead of printing what its file records')
    .option('--reference-dir <dir>', 'the parity dumps (default ../shared/reference)')
    .action(async (o: DemoOpts) => { process.exitCode = await runDemo(o); });
  examples(cmd, ['dit demo', 'dit demo --data fashion-mnist', 'dit demo --data fashion-mnist --preset long']);
}

/** Where the demo in `dir` trains a preset's DiT. */
const runDirOf = (dir: string, preset: DemoPreset) => path.join(dir, preset === 'quick' ? 'run' : `run-${preset}`);

/** A file's CRC-32 as hex: what a latent cache records of the VAE that made it. */
async function fileTag(file: string): Promise<string> { return crc32(await readFileBytes(file)).toString(16); }

async function runDemo(o: DemoOpts): Promise<number> {
  const quick = !!o.quick || process.env.CI === 'true';
  const L = quick ? LENGTHS.quick : LENGTHS.full;
  const name = o.data.kind, dir = o.out ?? path.join('out', name);
  const times: Record<string, number> = {};
  const stage = async <T,>(key: string, f: () => Promise<T>): Promise<T> => { const t0 = performance.now(); try { return await f(); } finally { times[key] = (performance.now() - t0) / 1000; } };
  checkOutputs({ inputs: [dataDir(o.data)], outputDirs: [dir] });
  await fs.mkdir(dir, { recursive: true });

  const g = await getDevice();
  const A = g.adapter;
  process.stdout.write(`adapter: ${describeAdapter(A)}; features: ${A.features.filter((f) => ['shader-f16', 'subgroups', 'timestamp-query'].includes(f)).join(', ') || 'none of shader-f16, subgroups, timestamp-query'}\n`);

  const ref = o.referenceDir ?? process.env.DIT_REFERENCE_DIR ?? fileURLToPath(new URL('../../../shared/reference', import.meta.url));
  if (existsSync(ref)) await stage('parity', async () => {
    process.stdout.write(`\nparity with the official PyTorch DiT and diffusers VAE (${ref}):\n`);
    for (const f of ['dit_tiny_p2', 'dit_tiny_p4', 'dit_tiny_p2_nosigma', 'sample_loop_tiny_p2', 'train_step_tiny', 'vae/vae_a', 'vae/vae_dist']) {
      const file = path.join(ref, `${f}.safetensors`);
      if (!existsSync(file)) continue;
      const rep = await verifyReference(file);
      const worst = rep.rows.reduce((m, r) => (r.metric === 'rel' ? Math.max(m, r.error) : m), 0);
      process.stdout.write(`  ${f.padEnd(22)} ${rep.kind.padEnd(11)} ${String(rep.rows.length).padStart(4)} checks  worst rel error ${worst.toExponential(2)}  ${rep.pass ? 'PASS' : 'FAIL'}\n`);
    }
  });

  process.stdout.write(`\nthe main job on ${name}${quick ? ' (quick: the short version CI runs)' : ''}; outputs in ${dir}/\n`);
  const { train, test } = await stage('data', async () => {
    const tr = await loadDataset(o.data, 'train', { onProgress: (m) => log(`  ${m}`) }), te = await loadDataset(o.data, 'test');
    await writeClassGrid(tr, path.join(dir, 'data-grid.png'), 10, 3);
    process.stdout.write(`  data: ${tr.count} train / ${te.count} test images, ${tr.channels === 1 ? 'grey' : 'RGB'} ${tr.height}×${tr.width}, classes ${tr.classes.join(', ')} → ${dir}/data-grid.png\n`);
    return { train: tr, test: te };
  });

  // The VAE: shipped, or trained here with the documented recipe (L1, then MSE with cosine decay) and reused
  // by the next demo of the same data and length (its metadata records which; a short one is never reused
  // by a full one).
  const shippedVae = path.join(WEIGHTS_DIR, `vae-${name}.safetensors`);
  const vaeFile = !o.fresh && existsSync(shippedVae) ? shippedVae : path.join(dir, 'vae.safetensors');
  const recipe = `${name}: ${L.vae.l1} L1 + ${L.vae.mse} MSE steps`;
  const vae = await stage('vae', async () => {
    if (vaeFile === shippedVae) { process.stdout.write(`  VAE: ${vaeFile} (shipped; its command is in weights/README.md)\n`); return loadVae(vaeFile); }
    if (!o.fresh && existsSync(vaeFile) && (await readSafetensors(vaeFile)).metadata.demo_recipe === recipe) {
      process.stdout.write(`  VAE: reusing ${vaeFile} (trained by an earlier demo, ${recipe}; --fresh trains it again)\n`);
      return loadVae(vaeFile);
    }
    const v = new AutoencoderKL({ ...SMALL_VAE_32, inChannels: train.channels, outChannels: train.channels }, 0);
    const p = new Progress('  VAE training', L.vae.l1 + L.vae.mse);
    const log2 = (off: number) => (m: { step: number; loss?: number }) => { if (m.loss !== undefined) p.update(off + m.step, `loss ${m.loss.toFixed(4)}`); };
    await trainVae(v, train, test, { steps: L.vae.l1, batch: 16, lr: 1e-3, loss: 'l1', evalEvery: 0, evalImages: 256, onLog: log2(0) });
    await trainVae(v, train, test, { steps: L.vae.mse, batch: 16, lr: 5e-4, loss: 'mse', cosine: true, evalEvery: 0, evalImages: 256, onLog: log2(L.vae.l1) });
    await saveVae(v, vaeFile, { demo_recipe: recipe });
    process.stdout.write(`  VAE: trained ${recipe} → ${vaeFile}\n`);
    return v;
  });
  // What the VAE scores is measured once and recorded in its file (shipped: weights/README.md); the demo's
  // time goes to the DiT. --measure measures again (and records it in a VAE the demo trained).
  const ownVae = vaeFile !== shippedVae;
  const vaePsnr = await stage('vae_psnr', async () => {
    await reconstructionGrid(vae, test, path.join(dir, 'vae-recon.png'));
    const recorded = recordedPsnr((await readSafetensors(vaeFile)).metadata);
    if (recorded && !o.measure) {
      process.stdout.write(`  VAE: held-out reconstruction PSNR ${recorded.db.toFixed(2)} dB over ${recorded.images} test images (recorded in ${vaeFile}; --measure measures again); originals above reconstructions: ${dir}/vae-recon.png\n`);
      return recorded.db;
    }
    const n = o.measure ? test.count : Math.min(1000, test.count);
    const p = new Progress('  reconstructing', n);
    const db = await psnr(vae, test, n, 64, (k) => p.update(k));
    if (ownVae) await recordInVaeFile(vaeFile, psnrEntries(db, n));
    process.stdout.write(`  VAE: held-out reconstruction PSNR ${db.toFixed(2)} dB over ${n} test images (originals above reconstructions: ${dir}/vae-recon.png)\n`);
    return db;
  });

  // The alignment teacher of recipes that align: shipped, or trained here (and reused by the next demo).
  const aligns = !!RECIPES[o.preset].alignment;
  const shippedTeacher = path.join(WEIGHTS_DIR, `teacher-${name}.safetensors`);
  const teacherFile = !aligns ? null : !o.fresh && existsSync(shippedTeacher) ? shippedTeacher : path.join(dir, 'teacher.safetensors');
  const teacher = !teacherFile ? null : await stage('teacher', async () => {
    const epochs = quick ? 1 : TEACHER_TRAINING.epochs;
    if (teacherFile === shippedTeacher) { process.stdout.write(`  teacher: ${teacherFile} (shipped; its command is in weights/README.md)\n`); return teacherFromSafetensors(await readSafetensors(teacherFile)).teacher; }
    if (!o.fresh && existsSync(teacherFile) && Number((await readSafetensors(teacherFile)).metadata.epochs) === epochs) {
      process.stdout.write(`  teacher: reusing ${teacherFile} (trained by an earlier demo; --fresh trains it again)\n`);
      return teacherFromSafetensors(await readSafetensors(teacherFile)).teacher;
    }
    const t = new Teacher({ ...TEACHER_32, channels: train.channels, classes: train.classes.length }, 0);
    let p: Progress | null = null;
    const r = await trainClassifier(t, train, { ...TEACHER_TRAINING, epochs, seed: 0, onLog: (m) => (p ??= new Progress('  teacher training', m.steps)).update(m.step, `loss ${m.loss.toFixed(3)}`) });
    await saveTeacher(t, teacherFile, { data: name, fingerprint: fingerprint(train), images: String(train.count), epochs: String(epochs), train_seconds: r.seconds.toFixed(0) });
    process.stdout.write(`  teacher: trained ${epochs} epoch${epochs > 1 ? 's' : ''} in ${r.seconds.toFixed(0)} s → ${teacherFile}\n`);
    return t;
  });

  const latFile = path.join(dir, 'latents.safetensors');
  const tag = `${await fileTag(vaeFile)}${teacherFile ? `+${await fileTag(teacherFile)}` : ''}`;
  await stage('latents', async () => {
    const cached = existsSync(latFile) && !o.fresh ? await readSafetensors(latFile) : null;
    if (cached && cached.metadata.vae === tag && Number(cached.shape('mean')[0]) === L.latents) { process.stdout.write(`  latents: reusing ${latFile}\n`); return; }
    // The DiT runs of the old latents would continue (or be reused) on new ones: they go too.
    for (const pr of DEMO_PRESETS) await fs.rm(runDirOf(dir, pr), { recursive: true, force: true });
    const images = subset(train, L.latents);
    let extraTensors: Record<string, { shape: number[]; data: Uint16Array }> | undefined;
    if (teacher) {
      const p = new Progress('  the teacher\'s features', L.latents);
      extraTensors = { teacher: await teacherFeatures(teacher, images, Array.from({ length: L.latents }, (_, i) => i), 100, (n) => p.update(n)) };
    }
    const p = new Progress('  encoding', L.latents);
    const r = await encodeDataset(vae, images, latFile, { scaleFromData: true, dataset: name, extraMeta: { vae: tag }, extraTensors, onProgress: (n) => p.update(n) });
    process.stdout.write(`  latents: ${L.latents} train images encoded, scale factor ${r.scale.toFixed(4)}${teacher ? ', with the teacher\'s features' : ''} → ${latFile}\n`);
  });
  teacher?.dispose();

  // The DiT: the preset's recipe in its run folder, planned as `dit train --preset` plans it, continued if an
  // earlier demo left it unfinished.
  const data = new LatentSet(await readSafetensors(latFile));
  const runDir = runDirOf(dir, o.preset);
  const plan = planRun(o.preset, dataInfo(data, path.resolve(latFile)),
    L.ditSteps ? { optim: { steps: L.ditSteps } } : {}, { vae: path.resolve(vaeFile), keep: 2 });
  const run = existsSync(path.join(runDir, 'config.json')) ? await Run.open(runDir) : await Run.create(runDir, plan);
  const c = run.config, r = c.recipe;
  const model = new DiT(c.model, {}, c.seed);
  const trainer = new DiTTrainer(model, r.objective, data, { ...r.optim, seed: c.seed }, r.alignment);
  await resumeInto(run, trainer);
  const compute = trainMultiplyAdds(c, r.optim.steps * r.optim.batch);
  await stage('dit', async () => {
    if (trainer.step >= r.optim.steps) { process.stdout.write(`  DiT: reusing the finished run ${runDir} (${r.optim.steps} steps; --fresh trains it again)\n`); return; }
    process.stdout.write(`  DiT: the ${o.preset} recipe (${r.objective.kind === 'flow' ? 'flow matching' : 'ε-prediction'}), D ${c.model.hiddenSize}, depth ${c.model.depth}, patch ${c.model.patchSize}, ${model.numParameters().toLocaleString('en-US')} parameters; `
      + `${r.optim.steps} steps at batch ${r.optim.batch}: ${(compute / 1e12).toFixed(1)} × 10¹² training multiply-adds → ${runDir}\n`);
    const p = new Progress('  DiT training', r.optim.steps, trainer.step);
    await trainRun(run, trainer, vae, { onMetrics: (m) => p.update(m.step, `loss ${m.loss.toFixed(4)}, ${m.stepsPerSec.toFixed(2)} steps/s`) });
  });
  trainer.useEma();

  const samples = await stage('sample', async () => {
    const K = test.classes.length, per = L.samplesPerClass;
    const p = new Progress('  sampling', K * per);
    const d = await sampleImages(model, vae, data.scale, classLabels(K, per), test.classes, { objective: r.objective, sampling: r.sampling, seed: 0, onProgress: (n) => p.update(n) });
    await fs.rm(path.join(dir, 'samples'), { recursive: true, force: true });
    await writeClassFolders(d, path.join(dir, 'samples'));
    const shown = Math.min(per, 10);
    await writePng(path.join(dir, 'samples.png'), datasetGrid(subsetPerClass(d, shown), shown, 2));
    process.stdout.write(`  samples: ${d.count} (${per} per class, ${r.sampling.sampler} ${r.sampling.steps} steps, guidance ${r.sampling.cfg}) → ${dir}/samples/, grid ${dir}/samples.png\n`);
    return d;
  });

  const { report, ceiling } = await stage('eval', async () => {
    const { judge, real } = await prepareJudgeShown(name, { train, test }, { retrain: !!o.fresh, log });
    process.stdout.write(`  judge: ${judge.file}${judge.trained ? ' (trained now)' : ''}\n`);
    const rep = await evaluateSamples(judge.model, samples, real);
    const recorded = o.measure ? null : recordedCeiling((await readSafetensors(vaeFile)).metadata, L.samplesPerClass, name, vaeFile);
    if (recorded) return { report: rep, ceiling: recorded };
    const measured = await reconstructionCeiling(judge.model, vae, test, real, L.samplesPerClass);
    if (ownVae) await recordInVaeFile(vaeFile, ceilingEntry(measured, L.samplesPerClass, name));
    return { report: rep, ceiling: measured };
  });
  const summary = {
    ...report, vae_psnr: vaePsnr, vae_ceiling: ceiling, preset: o.preset, recipe: r, data: name, quick,
    steps: r.optim.steps, images_seen: r.optim.steps * r.optim.batch, train_multiply_adds: compute, train_seconds: trainer.trainSeconds,
    adapter: describeAdapter(A), stage_seconds: times, learning_curve: `dit eval --curve ${runDir}`,
    pictures: { data: 'data-grid.png', vae: 'vae-recon.png', samples: 'samples.png', loss: `${path.basename(runDir)}/loss.png` },
  };
  await writeFileAtomic(path.join(dir, 'summary.json'), [new TextEncoder().encode(`${JSON.stringify(summary, null, 1)}\n`)]);
  process.stdout.write(`\n${formatReport(report)}\n`);
  process.stdout.write(`the ceiling of any model decoded by this VAE (its reconstructions of the floor's real images): accuracy ${(100 * ceiling.accuracy).toFixed(1)}%, Fréchet distance ${ceiling.frechet.toFixed(2)} (${(ceiling.frechet / ceiling.frechet_real).toFixed(2)}× the floor)\n`);
  process.stdout.write(`training compute: ${(compute / 1e12).toFixed(1)} × 10¹² multiply-adds (${r.optim.steps} steps × ${r.optim.batch} images × 3 × ${(compute / 3 / r.optim.steps / r.optim.batch / 1e6).toFixed(1)} M per forward), ${(trainer.trainSeconds / 60).toFixed(1)} min of training here\n`);
  process.stdout.write(`the learning curve of this run: dit eval --curve ${runDir} (its ${c.snapshots} snapshots against training compute; docs/results.md has the measured ones)\n`);
  process.stdout.write(`stages (s): ${Object.entries(times).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}\n`);
  process.stdout.write(`pictures: ${dir}/data-grid.png, ${dir}/vae-recon.png, ${runDir}/loss.png, ${dir}/samples.png; scores: ${dir}/summary.json\n`);
  trainer.dispose();
  model.dispose();
  return 0;
}

/** The first `n` samples of every class (the grid shows a few per class). */
function subsetPerClass(d: ImageDataset, n: number): ImageDataset {
  const per = d.channels * d.height * d.width;
  const idx: number[] = [];
  for (let k = 0; k < d.classes.length; k++) {
    let c = 0;
    for (let i = 0; i < d.count && c < n; i++) if (d.labels[i] === k) { idx.push(i); c++; }
  }
  const images = new Uint8Array(idx.length * per);
  idx.forEach((i, j) => images.set(d.images.subarray(i * per, (i + 1) * per), j * per));
  return { ...d, images, labels: Uint8Array.from(idx, (i) => d.labels[i]), count: idx.length };
}
