// `dit vae train|encode|decode|psnr` and `dit data grid`: the VAE on a dataset (built in, Fashion-MNIST,
// CIFAR-10 binaries or PNG folders) and the latent cache DiT trains on.
import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { getDevice, describeAdapter } from '../engine/device.js';
import { Tensor, scope, noGrad } from '../engine/tensor.js';
import { readSafetensors, metadataJson, type Safetensors } from '../engine/safetensors.js';
import { Teacher, teacherFeatures, teacherFromSafetensors, type TeacherConfig } from '../eval/teacher.js';
import { writeClassGrid, subset, type ImageDataset } from '../data/dataset.js';
import { loadDataset, type DataSpec } from '../data/readers.js';
import { AutoencoderKL, SMALL_VAE_32, SD_VAE_FT_MSE } from '../vae/model.js';
import { readVae, buildVae, recordInVaeFile, psnrEntries, type VaeFile } from '../vae/checkpoint.js';
import { NonFiniteError } from '../engine/errors.js';
import { trainVae, encodeDataset, psnr, reconstructionGrid, DEFAULT_KL_WEIGHT } from '../vae/train.js';
import { toImage, grid, writePng } from '../data/png.js';
import { int, num, choice, intList, existing, dataOption, dataDir, examples, log, checkOutputs, UsageError, LIMITS } from './options.js';
import { Progress } from './progress.js';

const loadSplit = (spec: DataSpec, split: 'train' | 'test') => loadDataset(spec, split, { onProgress: (m) => log(`  ${m}`) });

/** A VAE read on the host, refused (before any GPU work) unless it takes images of the data's channel count. */
async function readVaeFor(file: string, d: ImageDataset, spec: DataSpec): Promise<VaeFile> {
  const v = await readVae(file);
  if (v.config.inChannels !== d.channels) throw new UsageError(`${file}: this VAE takes ${v.config.inChannels}-channel images, the ${spec.kind} data has ${d.channels} channel${d.channels > 1 ? 's' : ''}`);
  return v;
}

/** A teacher file read on the host, checked against the data (channels) and the VAE (its features must be at the latents' resolution). */
async function readTeacherFor(file: string, d: ImageDataset, spec: DataSpec, vae: VaeFile): Promise<Safetensors> {
  const st = await readSafetensors(file);
  const c = metadataJson<TeacherConfig>(st.metadata, 'config', file);
  if (st.metadata.format !== 'dit-webgpu-teacher' || !c) throw new UsageError(`${file}: not an alignment teacher (dit teacher train writes them)`);
  if (c.channels !== d.channels) throw new UsageError(`${file}: this teacher takes ${c.channels}-channel images, the ${spec.kind} data has ${d.channels}`);
  const down = c.strides.reduce((a, b) => a * b, 1), vaeDown = 2 ** (vae.config.blockOutChannels.length - 1);
  if (down !== vaeDown) throw new UsageError(`${file}: the teacher's features are at 1/${down} of the image's side, ${vae.source}'s latents at 1/${vaeDown}: they must match (one feature vector per latent pixel)`);
  return st;
}

/** The teacher's features of every image of `d`, with progress: the cache's 'teacher' tensor. */
async function teacherFeaturesShown(t: Teacher, d: ImageDataset): Promise<{ shape: number[]; data: Uint16Array }> {
  const p = new Progress('the teacher\'s features', d.count);
  return teacherFeatures(t, d, Array.from({ length: d.count }, (_, i) => i), 100, (n) => p.update(n));
}

interface VaeTrainOpts { data: DataSpec; preset: 'small' | 'sd'; channels?: number[]; latentChannels?: number; resume?: string; steps: number; batch: number; lr: number; kl: number; loss: 'l1' | 'mse'; equivariance: number; cosine?: boolean; evalEvery: number; evalImages: number; seed: number; out: string }

export function registerVae(program: Command): void {
  const vae = program.command('vae').description('the VAE: train it, encode a dataset to a latent cache, decode latents, measure reconstruction PSNR');

  const train = vae.command('train').description('train the small VAE (32×32 images → 8×8×4 latents, or 8×8×N with --latent-channels N) on a dataset')
    .addOption(dataOption())
    .addOption(choice('--preset <name>', 'architecture: small (block widths 32,64,64) or sd (sd-vae-ft-mse)', ['small', 'sd'], 'small'))
    .addOption(intList('--channels <list>', 'block widths of the small preset, e.g. 32,64,64 (multiples of its 16 norm groups)', { min: SMALL_VAE_32.normNumGroups, max: 1024 }))
    .addOption(int('--latent-channels <n>', `channels of the small preset's latents (default ${SMALL_VAE_32.latentChannels}): more keep more of each image, the DiT's input grows with them`, { min: 1, max: 64 }))
    .addOption(existing('--resume <file>', 'continue from these weights (e.g. a second phase with --loss mse)'))
    .addOption(int('--steps <n>', 'training steps', { min: 1, max: LIMITS.steps, def: 2000 }))
    .addOption(int('--batch <n>', 'batch size', { min: 1, max: LIMITS.batch, def: 32 }))
    .addOption(num('--lr <x>', 'learning rate', { above: 0, def: 1e-3 }))
    .addOption(num('--kl <w>', 'KL weight', { min: 0, def: DEFAULT_KL_WEIGHT }))
    .addOption(choice('--loss <kind>', 'reconstruction loss', ['l1', 'mse'], 'l1'))
    .addOption(num('--equivariance <w>', "weight of EQ-VAE's equivariance loss: each step the decoder also rebuilds the image turned, flipped upside down or halved from its latents turned, flipped or halved alike (0: off)", { min: 0, def: 0 }))
    .option('--cosine', 'cosine learning-rate decay to 10% over the run')
    .addOption(int('--eval-every <n>', 'held-out PSNR every n steps (0: at the end)', { min: 0, max: LIMITS.steps, def: 500 }))
    .addOption(int('--eval-images <n>', 'test images for that PSNR', { min: 1, max: LIMITS.images, def: 1000 }))
    .addOption(int('--seed <n>', 'seed', { min: 0, max: LIMITS.seed, def: 0 }))
    .option('--out <file>', 'weights file', 'out/vae.safetensors')
    .action(async (o: VaeTrainOpts) => { process.exitCode = await vaeTrain(o); });
  examples(train, [
    'dit vae train --steps 500 --batch 16 --lr 1e-3 --loss l1 --out out/vae-small.safetensors',
    'dit vae train --resume out/vae-small.safetensors --steps 1000 --batch 16 --lr 5e-4 --loss mse --cosine --out out/vae-small.safetensors',
  ]);

  const encode = vae.command('encode').description('encode a dataset split into a latent cache (safetensors: mean, logvar, labels; metadata scale_factor, classes, dataset)')
    .addOption(existing('--weights <file>', 'the VAE').makeOptionMandatory())
    .addOption(dataOption())
    .addOption(choice('--split <name>', 'which split', ['train', 'test'], 'train'))
    .addOption(int('--count <n>', 'encode only the first n images', { min: 1, max: LIMITS.images }))
    .option('--no-scale-from-data', 'use the VAE\'s configured scaling factor instead of 1/std of the data\'s latents')
    .addOption(existing('--teacher <file>', 'also store this alignment teacher\'s features of every image (dit teacher train): the recipes that align need them'))
    .option('--out <file>', 'the cache', 'out/latents.safetensors')
    .action(async (o: { weights: string; data: DataSpec; split: 'train' | 'test'; count?: number; scaleFromData: boolean; teacher?: string; out: string }) => {
      checkOutputs({ inputs: [o.weights, o.teacher, dataDir(o.data)], outputs: [o.out] });
      const full = await loadSplit(o.data, o.split);
      const d = o.count ? subset(full, o.count) : full;
      const vf = await readVaeFor(o.weights, d, o.data);
      const tf = o.teacher ? await readTeacherFor(o.teacher, d, o.data, vf) : null;
      const g = await getDevice();
      log(`adapter: ${describeAdapter(g.adapter)}`);
      const extraTensors = tf ? { teacher: await teacherFeaturesShown(teacherFromSafetensors(tf).teacher, d) } : undefined;
      const progress = new Progress('encoding', d.count);
      const r = await encodeDataset(buildVae(vf), d, o.out, { scaleFromData: o.scaleFromData, dataset: o.data.kind, extraTensors, extraMeta: o.teacher ? { teacher: o.teacher } : undefined, onProgress: (n) => progress.update(n), log });
      process.stdout.write(`wrote ${o.out}: ${d.count} latents, scale factor ${r.scale.toFixed(5)}${tf ? `, with the teacher's features (${o.teacher})` : ''}\n`);
    });
  examples(encode, ['dit vae encode --weights out/vae-small.safetensors --count 20000 --out out/latents.safetensors', 'dit vae encode --weights out/vae-small.safetensors --teacher out/teacher.safetensors --count 2000 --out out/latents-aligned.safetensors']);

  const decode = vae.command('decode').description('decode latents (a latent cache\'s means, or a `latents` tensor) to a PNG grid')
    .addOption(existing('--weights <file>', 'the VAE').makeOptionMandatory())
    .addOption(existing('--latents <file>', 'safetensors with `latents` (scaled) or `mean` (unscaled) [N, C, h, w]').makeOptionMandatory())
    .addOption(int('--count <n>', 'how many', { min: 1, max: LIMITS.perClass, def: 64 }))
    .option('--out <file>', 'the grid', 'out/decoded.png')
    .action(async (o: { weights: string; latents: string; count: number; out: string }) => {
      checkOutputs({ inputs: [o.weights, o.latents], outputs: [o.out] });
      const st = await readSafetensors(o.latents);
      const key = st.has('latents') ? 'latents' : 'mean';
      if (!st.has(key)) throw new UsageError(`${o.latents}: no 'latents' or 'mean' tensor`);
      const shape = st.shape(key);
      const vf = await readVae(o.weights);
      if (shape.length !== 4 || shape[1] !== vf.config.latentChannels) throw new UsageError(`${o.latents}: '${key}' is ${JSON.stringify(shape)}, the VAE ${o.weights} decodes [N, ${vf.config.latentChannels}, h, w]`);
      const n = Math.min(o.count, shape[0]);
      const per = shape.slice(1).reduce((x, y) => x * y, 1);
      const scale = key === 'mean' ? 1 : Number(st.metadata.scale_factor ?? 1);
      const values = st.finiteF32(key).subarray(0, n * per);
      await getDevice();
      const v = buildVae(vf);
      const z = Tensor.from(values.map((x) => x / scale), [n, ...shape.slice(1)]);
      const x = scope(() => noGrad(() => v.decodeLarge(z, log)));
      const data = (await x.data()) as Float32Array;
      const [C, H, W] = x.shape.slice(1);
      await writePng(o.out, grid(Array.from({ length: n }, (_, i) => toImage(data.subarray(i * C * H * W, (i + 1) * C * H * W), C, H, W)), 8, 2));
      process.stdout.write(`wrote ${o.out}\n`);
    });
  examples(decode, ['dit vae decode --weights out/vae-small.safetensors --latents out/latents.safetensors --count 16']);

  const ps = vae.command('psnr').description('held-out reconstruction PSNR (dB, images in [-1, 1]) over the test split')
    .addOption(existing('--weights <file>', 'the VAE').makeOptionMandatory())
    .addOption(dataOption())
    .addOption(int('--count <n>', 'the first n test images (default: all)', { min: 1, max: LIMITS.images }))
    .option('--record', 'write the result into the VAE file\'s metadata (the demo prints it from there instead of measuring again)')
    .action(async (o: { weights: string; data: DataSpec; count?: number; record?: boolean }) => {
      if (o.record) checkOutputs({ inputs: [o.weights], outputs: [o.weights], updates: o.weights });
      const d = await loadSplit(o.data, 'test');
      const vf = await readVaeFor(o.weights, d, o.data);
      const g = await getDevice();
      log(`adapter: ${describeAdapter(g.adapter)}`);
      const n = Math.min(o.count ?? d.count, d.count);
      const progress = new Progress('reconstructing', n);
      const db = await psnr(buildVae(vf), d, n, 32, (k) => progress.update(k));
      if (o.record) await recordInVaeFile(o.weights, psnrEntries(db, n));
      process.stdout.write(`held-out PSNR ${db.toFixed(2)} dB over ${n} images${o.record ? ` (recorded in ${o.weights})` : ''}\n`);
    });
  examples(ps, ['dit vae psnr --weights out/vae-small.safetensors --count 1000', 'dit vae psnr --weights out/vae-small.safetensors --record']);
}

/** The `dit vae train` command line of these options (defaults left out), as a trained file records it. */
function vaeTrainCommand(o: VaeTrainOpts): string {
  const flags = [
    dataDir(o.data) ? `--data ${o.data.kind}:${dataDir(o.data)}` : '', o.preset !== 'small' ? `--preset ${o.preset}` : '',
    o.channels ? `--channels ${o.channels.join(',')}` : '', o.latentChannels ? `--latent-channels ${o.latentChannels}` : '', o.resume ? `--resume ${o.resume}` : '',
    `--steps ${o.steps} --batch ${o.batch} --lr ${o.lr} --loss ${o.loss}`, o.kl !== DEFAULT_KL_WEIGHT ? `--kl ${o.kl}` : '', o.equivariance ? `--equivariance ${o.equivariance}` : '',
    o.cosine ? '--cosine' : '', o.seed ? `--seed ${o.seed}` : '',
  ];
  return `dit vae train ${flags.filter(Boolean).join(' ')} --out ${o.out}`;
}

async function vaeTrain(o: VaeTrainOpts): Promise<number> {
  for (const [flag, given] of [['--channels', o.channels], ['--latent-channels', o.latentChannels]] as const) {
    if (given !== undefined && (o.resume || o.preset === 'sd')) throw new UsageError(`${flag} shapes a new small VAE, not ${o.resume ? `--resume ${o.resume}` : 'the sd preset'}`);
  }
  if (o.channels?.some((c) => c % SMALL_VAE_32.normNumGroups)) throw new UsageError(`--channels ${o.channels.join(',')}: every width must be a multiple of ${SMALL_VAE_32.normNumGroups} (the small preset's norm groups)`);
  const reconFile = `${o.out.replace(/\.safetensors$/, '')}-recon.png`;
  // The file --resume reads may be the --out it replaces (a second phase in place): the last good weights
  // stay there until new finite ones are written.
  checkOutputs({ inputs: [dataDir(o.data), o.resume], outputs: [o.out, reconFile], updates: o.resume });
  const train = await loadSplit(o.data, 'train'), test = await loadSplit(o.data, 'test');
  const resumed = o.resume ? await readVaeFor(o.resume, train, o.data) : null;
  const config = o.preset === 'sd' ? SD_VAE_FT_MSE : { ...SMALL_VAE_32, inChannels: train.channels, outChannels: train.channels, ...(o.channels ? { blockOutChannels: o.channels } : {}), ...(o.latentChannels ? { latentChannels: o.latentChannels } : {}) };
  if (!resumed && config.inChannels !== train.channels) throw new UsageError(`the ${o.preset} VAE takes ${config.inChannels}-channel images, the ${o.data.kind} data has ${train.channels}`);
  const g = await getDevice();
  log(`adapter: ${describeAdapter(g.adapter)}`);
  const v = resumed ? buildVae(resumed) : new AutoencoderKL(config, o.seed);
  log(`VAE ${JSON.stringify(v.config.blockOutChannels)} → ${v.config.latentChannels} latent channels, ${v.numParameters().toLocaleString('en-US')} parameters; ${train.count} train / ${test.count} test images; ${o.steps} steps`);
  const progress = new Progress('training', o.steps);
  // What trained the file, chained after what trained the weights it resumed (a recipe of several phases).
  const earlier = resumed?.metadata ?? {};
  const command = [earlier.command, vaeTrainCommand(o)].filter(Boolean).join(' && ');
  const metadata = (step: number) => ({ data: o.data.kind, steps: String(Number(earlier.steps ?? 0) + step), command });
  let r: Awaited<ReturnType<typeof trainVae>>;
  try {
    r = await trainVae(v, train, test, {
      steps: o.steps, batch: o.batch, lr: o.lr, klWeight: o.kl, loss: o.loss, equivariance: o.equivariance, evalEvery: o.evalEvery, evalImages: o.evalImages, checkpoint: o.out, checkpointEvery: 250, metadata, seed: o.seed, cosine: o.cosine,
      onLog: (m) => { if (m.psnr !== undefined) log(`step ${m.step}: held-out PSNR ${m.psnr.toFixed(2)} dB (${m.secs.toFixed(0)} s)`); else progress.update(m.step, `loss ${m.loss!.toFixed(4)}, ${m.liveMiB.toFixed(0)} MiB live`); },
    });
  } catch (e) {
    if (!(e instanceof NonFiniteError)) throw e;
    log(`dit vae train: ${e.message}; stopped. ${existsSync(o.out) ? `${o.out} keeps the last good weights` : `${o.out} was not written`}. Try a lower --lr.`);
    return 3;
  }
  process.stdout.write(`trained ${o.steps} steps in ${r.seconds.toFixed(0)} s on ${describeAdapter(g.adapter)}; held-out PSNR ${r.psnr.toFixed(2)} dB; wrote ${o.out}\n`);
  await reconstructionGrid(v, test, reconFile);
  return 0;
}


export function registerData(program: Command): void {
  const data = program.command('data').description('datasets');
  const g = data.command('grid').description('a PNG grid of images per class')
    .addOption(dataOption())
    .addOption(choice('--split <name>', 'which split', ['train', 'test'], 'train'))
    .addOption(int('--per-class <n>', 'images per class', { min: 1, max: 1000, def: 10 }))
    .option('--out <file>', 'the grid', 'out/data-grid.png')
    .action(async (o: { data: DataSpec; split: 'train' | 'test'; perClass: number; out: string }) => {
      checkOutputs({ inputs: [dataDir(o.data)], outputs: [o.out] });
      const d = await loadSplit(o.data, o.split);
      await writeClassGrid(d, o.out, o.perClass, 3);
      process.stdout.write(`wrote ${o.out}: ${d.count} images, classes ${d.classes.join(', ')}\n`);
    });
  examples(g, ['dit data grid --data synthetic --out out/data-grid.png']);
}
