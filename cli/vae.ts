// `dit vae train|encode|decode` and `dit data grid`: the VAE on the built-in dataset (or CIFAR-10 / PNG folders).
import { getDevice, describeAdapter } from '../engine/device.js';
import { Tensor, scope, noGrad } from '../engine/tensor.js';
import { readSafetensors } from '../engine/safetensors.js';
import { syntheticDataset, readCifar10, readPngFolder, writeClassGrid, type ImageDataset } from '../data/dataset.js';
import { AutoencoderKL, SMALL_VAE_32, SD_VAE_FT_MSE } from '../vae/model.js';
import { loadVae } from '../vae/checkpoint.js';
import { trainVae, encodeDataset, psnr } from '../vae/train.js';
import { toImage, grid, writePng } from '../data/png.js';
import { Progress } from './progress.js';
import type { Args } from './args.js';

/** --data synthetic (default) | cifar10:DIR | folder:DIR */
export async function loadData(a: Args, split: 'train' | 'test'): Promise<ImageDataset> {
  const spec = a.str('data') ?? 'synthetic';
  if (spec === 'synthetic') return syntheticDataset(split, { seed: a.num('data-seed') ?? 0, count: split === 'train' ? a.num('train-count') : a.num('test-count'), onProgress: (m) => process.stderr.write(`${m}\n`) });
  if (spec.startsWith('cifar10:')) return readCifar10(spec.slice(8), split);
  if (spec.startsWith('folder:')) return readPngFolder(spec.slice(7));
  throw new Error(`--data must be synthetic, cifar10:DIR or folder:DIR (got '${spec}')`);
}

export async function runVae(a: Args): Promise<number> {
  const [sub] = a.positional;
  const g = await getDevice();
  process.stderr.write(`adapter: ${describeAdapter(g.adapter)}\n`);
  if (sub === 'train') {
    const train = await loadData(a, 'train'), test = await loadData(a, 'test');
    const preset = a.str('preset') ?? 'small';
    const config = preset === 'sd' ? SD_VAE_FT_MSE : { ...SMALL_VAE_32, ...(a.list('channels') ? { blockOutChannels: a.list('channels')! } : {}) };
    const vae = a.str('resume') ? await loadVae(a.str('resume')!) : new AutoencoderKL(config, a.num('seed') ?? 0);
    const steps = a.num('steps') ?? 2000;
    const out = a.str('out') ?? 'out/vae.safetensors';
    process.stderr.write(`VAE ${JSON.stringify(vae.config.blockOutChannels)}, ${vae.numParameters().toLocaleString('en-US')} parameters; ${train.count} train / ${test.count} test images; ${steps} steps\n`);
    const progress = new Progress('training', steps);
    const r = await trainVae(vae, train, test, {
      steps, batch: a.num('batch') ?? 32, lr: a.num('lr') ?? 1e-3, klWeight: a.num('kl') ?? 1e-6, loss: (a.str('loss') ?? 'l1') as 'l1' | 'mse',
      evalEvery: a.num('eval-every') ?? 500, evalImages: a.num('eval-images') ?? 1000, checkpoint: out, checkpointEvery: 250, seed: a.num('seed') ?? 0, cosine: a.bool('cosine'),
      onLog: (m) => { if (m.psnr !== undefined) process.stderr.write(`\nstep ${m.step}: held-out PSNR ${m.psnr.toFixed(2)} dB (${m.secs.toFixed(0)} s)\n`); else progress.update(m.step, `loss ${m.loss!.toFixed(4)}, ${m.liveMiB.toFixed(0)} MiB live`); },
    });
    process.stdout.write(`trained ${steps} steps in ${r.seconds.toFixed(0)} s on ${describeAdapter(g.adapter)}; held-out PSNR ${r.psnr.toFixed(2)} dB; wrote ${out}\n`);
    await reconstructionGrid(vae, test, (a.str('out') ?? 'out/vae.safetensors').replace(/\.safetensors$/, '-recon.png'));
    return 0;
  }
  if (sub === 'encode') {
    const vae = await loadVae(need(a, 'weights'));
    const d = await loadData(a, (a.str('split') ?? 'train') as 'train' | 'test');
    const out = a.str('out') ?? 'out/latents.safetensors';
    const progress = new Progress('encoding', d.count);
    const sd = (vae.config.blockOutChannels.length === 4 && vae.config.blockOutChannels[0] === 128);
    const r = await encodeDataset(vae, d, out, { scaleFromData: a.has('scale-from-data') ? a.bool('scale-from-data') : !sd, onProgress: (n) => progress.update(n), log: (m) => process.stderr.write(`${m}\n`) });
    process.stdout.write(`wrote ${out}: ${d.count} latents, scale factor ${r.scale.toFixed(5)}\n`);
    return 0;
  }
  if (sub === 'decode') {
    const vae = await loadVae(need(a, 'weights'));
    const st = await readSafetensors(need(a, 'latents'));
    const key = st.has('latents') ? 'latents' : 'mean';
    const shape = st.shape(key);
    const n = Math.min(a.num('count') ?? 64, shape[0]);
    const per = shape.slice(1).reduce((x, y) => x * y, 1);
    const scale = key === 'mean' ? 1 : Number(st.metadata.scale_factor ?? 1);
    const z = Tensor.from(st.f32(key).subarray(0, n * per).map((v) => v / scale), [n, ...shape.slice(1)]);
    const x = scope(() => noGrad(() => vae.decodeLarge(z, (m) => process.stderr.write(`${m}\n`))));
    const data = (await x.data()) as Float32Array;
    const [C, H, W] = x.shape.slice(1);
    const out = a.str('out') ?? 'out/decoded.png';
    await writePng(out, grid(Array.from({ length: n }, (_, i) => toImage(data.subarray(i * C * H * W, (i + 1) * C * H * W), C, H, W)), 8, 2));
    process.stdout.write(`wrote ${out}\n`);
    return 0;
  }
  if (sub === 'psnr') {
    const vae = await loadVae(need(a, 'weights'));
    const d = await loadData(a, 'test');
    const n = Math.min(a.num('count') ?? d.count, d.count);
    const progress = new Progress('reconstructing', n);
    process.stdout.write(`held-out PSNR ${(await psnr(vae, d, n, 32, (k) => progress.update(k))).toFixed(2)} dB over ${n} images\n`);
    return 0;
  }
  process.stderr.write('usage: dit vae train|encode|decode|psnr [options] (see dit help)\n');
  return 2;
}

function need(a: Args, k: string): string {
  const v = a.str(k);
  if (!v) throw new Error(`--${k} is required`);
  return v;
}

/** Originals (odd rows) above their reconstructions (even rows). */
export async function reconstructionGrid(vae: AutoencoderKL, d: ImageDataset, file: string, n = 8): Promise<void> {
  const { imageBatch } = await import('../data/dataset.js');
  const x = imageBatch(d, Array.from({ length: n }, (_, i) => i));
  const y = scope(() => noGrad(() => vae.forward(x)));
  const [xs, ys] = [(await x.data()) as Float32Array, (await y.data()) as Float32Array];
  const per = 3 * d.height * d.width;
  const imgs = [...Array.from({ length: n }, (_, i) => toImage(xs.subarray(i * per, (i + 1) * per), 3, d.height, d.width)), ...Array.from({ length: n }, (_, i) => toImage(ys.subarray(i * per, (i + 1) * per), 3, d.height, d.width))];
  await writePng(file, grid(imgs, n, 3));
}

export async function runData(a: Args): Promise<number> {
  if (a.positional[0] !== 'grid') { process.stderr.write('usage: dit data grid [--data synthetic|cifar10:DIR|folder:DIR] [--out FILE]\n'); return 2; }
  const d = await loadData(a, (a.str('split') ?? 'train') as 'train' | 'test');
  const out = a.str('out') ?? 'out/data-grid.png';
  await writeClassGrid(d, out, a.num('per-class') ?? 10, 3);
  process.stdout.write(`wrote ${out}: ${d.count} images, classes ${d.classes.join(', ')}\n`);
  return 0;
}
