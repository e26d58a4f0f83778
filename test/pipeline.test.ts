import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateSynthetic, SYNTHETIC_CLASSES } from '../data/synthetic.js';
import { imageBatch, writeClassGrid } from '../data/dataset.js';
import { parseCifar10, toCifar10Bytes, readPngFolder } from '../data/readers.js';
import { writePng, toImage, readPng } from '../data/png.js';
import { AutoencoderKL, type VaeConfig } from '../vae/model.js';
import { trainVae, encodeDataset, psnr, saveVae, vaeLoss, EQUIVARIANCE_TRANSFORMS } from '../vae/train.js';
import { Tensor, scope, noGrad, keep } from '../engine/tensor.js';
import { Generator } from '../kernels/random.js';
import { loadVae } from '../vae/checkpoint.js';
import { readSafetensors, writeSafetensors } from '../engine/safetensors.js';
import { DiT } from '../dit/model.js';
import { LatentSet, DiTTrainer } from '../dit/train.js';
import { readWeights, ditFromWeights } from '../dit/checkpoint.js';
import { OFFICIAL_OBJECTIVE } from '../diffusion/objective.js';
import { device, read, trainConfig } from './helpers.js';

const TINY_VAE: VaeConfig = { inChannels: 3, outChannels: 3, blockOutChannels: [8, 16, 16], layersPerBlock: 1, normNumGroups: 4, latentChannels: 4, scalingFactor: 1 };

describe('data, VAE training and DiT training (the pipeline)', function () {
  this.timeout(300000);
  let dir: string;
  before(async () => { await device(); dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pipe-')); });

  it('the built-in dataset is deterministic per seed, balanced over 10 shape classes, and 32×32 RGB', () => {
    const a = generateSynthetic(7, 0, 300), b = generateSynthetic(7, 0, 300), c = generateSynthetic(8, 0, 300);
    expect(Buffer.from(a.images).equals(Buffer.from(b.images))).to.equal(true);
    expect(Buffer.from(a.images).equals(Buffer.from(c.images))).to.equal(false);
    expect(a.classes).to.deep.equal([...SYNTHETIC_CLASSES]);
    const counts = Array.from({ length: 10 }, (_, k) => a.labels.filter((l) => l === k).length);
    expect(Math.min(...counts)).to.be.greaterThan(15);
    // Images are not flat: every image has contrast.
    for (let i = 0; i < 20; i++) {
      const im = a.images.subarray(i * 3072, (i + 1) * 3072);
      expect(Math.max(...im) - Math.min(...im)).to.be.greaterThan(60);
    }
  });

  it('reads CIFAR-10 binaries, rejects bad sizes and labels, and reads PNG folders', async () => {
    const d = generateSynthetic(1, 0, 5);
    const bin = toCifar10Bytes(d);
    const back = parseCifar10([{ name: 'data_batch_1.bin', bytes: bin }]);
    expect(Buffer.from(back.images).equals(Buffer.from(d.images))).to.equal(true);
    expect(() => parseCifar10([{ name: 'x.bin', bytes: bin.subarray(0, 3072) }])).to.throw(/x.bin: 3072 bytes is not a whole number of CIFAR-10 records/);
    const bad = Uint8Array.from(bin); bad[0] = 12;
    expect(() => parseCifar10([{ name: 'y.bin', bytes: bad }])).to.throw(/y.bin: record 0 has label 12/);
    for (const [cls, i] of [['cat', 0], ['cat', 1], ['dog', 2]] as const) {
      await fs.mkdir(path.join(dir, 'pngs', cls), { recursive: true });
      await writePng(path.join(dir, 'pngs', cls, `${i}.png`), toImage(Float32Array.from(d.images.subarray(i * 3072, (i + 1) * 3072), (v) => v / 127.5 - 1), 3, 32, 32));
    }
    const f = await readPngFolder(path.join(dir, 'pngs'));
    expect(f.classes).to.deep.equal(['cat', 'dog']);
    expect(Array.from(f.labels)).to.deep.equal([0, 0, 1]);
    expect(Math.max(...Array.from(f.images.subarray(0, 3072), (v, k) => Math.abs(v - d.images[k])))).to.be.at.most(1);
    await writeClassGrid(d, path.join(dir, 'grid.png'), 2);
    expect((await readPng(path.join(dir, 'grid.png'))).width).to.be.greaterThan(64);
  });

  it('batches are [-1, 1] and random flips mirror the image', async () => {
    const d = generateSynthetic(1, 0, 2);
    const x = await read(imageBatch(d, [0]));
    expect(x[0]).to.be.closeTo(d.images[0] / 127.5 - 1, 1e-6);
    const f = await read(imageBatch(d, [0], () => 0));
    expect(f[0]).to.be.closeTo(d.images[31] / 127.5 - 1, 1e-6);
  });

  it('a VAE trains (loss and PSNR improve), saves, reloads, and encodes a latent cache with its scale factor', async () => {
    const train = generateSynthetic(2, 0, 256), test = generateSynthetic(2, 1, 32);
    const vae = new AutoencoderKL(TINY_VAE, 1);
    const before = await psnr(vae, test, 32);
    const losses: number[] = [];
    const r = await trainVae(vae, train, test, { steps: 50, batch: 8, lr: 2e-3, evalImages: 32, checkpoint: path.join(dir, 'vae.safetensors'), onLog: (m) => { if (m.loss !== undefined) losses.push(m.loss); } });
    expect(r.psnr).to.be.greaterThan(before + 3);
    expect(losses[losses.length - 1]).to.be.lessThan(losses[0]);
    const re = await loadVae(path.join(dir, 'vae.safetensors'));
    expect(re.config).to.deep.include({ blockOutChannels: [8, 16, 16], normNumGroups: 4 });
    expect(await psnr(re, test, 32)).to.be.closeTo(r.psnr, 1e-3);
    const enc = await encodeDataset(re, train, path.join(dir, 'lat.safetensors'), { scaleFromData: true });
    const st = await readSafetensors(path.join(dir, 'lat.safetensors'));
    expect(st.shape('mean')).to.deep.equal([256, 4, 8, 8]);
    expect(Number(st.metadata.scale_factor)).to.equal(enc.scale);
    await saveVae(re, path.join(dir, 'vae2.safetensors'));
  });

  it("EQ-VAE's term is the reconstruction of the image turned, flipped or halved, decoded from the latent sample turned, flipped or halved alike", async () => {
    const vae = new AutoencoderKL(TINY_VAE, 3);
    const x = imageBatch(generateSynthetic(3, 0, 2), [0, 1]);
    const xs = await read(x);
    const lossOf = (equivariance: number, transform: number) => scope(() => noGrad(() => vaeLoss(vae, x, new Generator(9), { loss: 'mse', klWeight: 0, equivariance, transform }))).item();
    // The posterior sample vaeLoss draws (the same generator), on the host.
    const z = scope(() => noGrad(() => { const post = vae.encode(x); return keep(post.sample(new Generator(9).randn(post.mean.shape))); }));
    const zs = await read(z);
    const plain = await lossOf(0, -1);
    for (let k = 0; k < EQUIVARIANCE_TRANSFORMS; k++) {
      const zt = transformedOnHost(zs, z.shape, k), xt = transformedOnHost(xs, x.shape, k);
      const decoded = await read(scope(() => noGrad(() => vae.decode(Tensor.from(zt.data, zt.shape)))));
      expect(decoded.length, `transform ${k}`).to.equal(xt.data.length);
      const term = decoded.reduce((acc, v, i) => acc + (v - xt.data[i]) ** 2, 0) / decoded.length;
      expect(await lossOf(0.5, k), `transform ${k}`).to.be.closeTo(plain + 0.5 * term, 1e-5 * (plain + term));
    }
    // And training with it runs (each transform's backward is checked in the kernel registry).
    const r = await trainVae(vae, generateSynthetic(3, 0, 16), generateSynthetic(3, 1, 8), { steps: 6, batch: 4, evalImages: 8, equivariance: 0.5 });
    expect(Number.isFinite(r.psnr)).to.equal(true);
    x.dispose(); z.dispose(); vae.dispose();
  });

  it('a VAE with 8 latent channels records them, encodes [N, 8, h, w], and a DiT of 8 input channels trains on those latents', async () => {
    const train = generateSynthetic(2, 0, 32), test = generateSynthetic(2, 1, 8);
    const vae = new AutoencoderKL({ ...TINY_VAE, latentChannels: 8 }, 1);
    await trainVae(vae, train, test, { steps: 2, batch: 4, evalImages: 8, checkpoint: path.join(dir, 'vae8.safetensors') });
    const re = await loadVae(path.join(dir, 'vae8.safetensors'));
    expect(re.config.latentChannels).to.equal(8);
    await encodeDataset(re, train, path.join(dir, 'lat8.safetensors'), { scaleFromData: true });
    const st = await readSafetensors(path.join(dir, 'lat8.safetensors'));
    expect(st.shape('mean')).to.deep.equal([32, 8, 8, 8]);
    const model = new DiT(undefined, { inputSize: 8, inChannels: 8, hiddenSize: 32, depth: 1, numHeads: 2, numClasses: 10 }, 0);
    const trainer = new DiTTrainer(model, OFFICIAL_OBJECTIVE, new LatentSet(st), trainConfig({ steps: 2, batch: 4, lr: 1e-3 }));
    trainer.trainStep(false); trainer.trainStep(true);
    expect(Number.isFinite((await trainer.metrics()).loss)).to.equal(true);
    trainer.dispose(); model.dispose(); vae.dispose(); re.dispose();
  });

  it('a DiT trains on the latent cache (loss falls, live memory flat), and a checkpoint reloads its EMA weights by default', async () => {
    const st = await readSafetensors(path.join(dir, 'lat.safetensors'));
    const data = new LatentSet(st);
    const model = new DiT(undefined, { inputSize: 8, inChannels: 4, hiddenSize: 32, depth: 2, numHeads: 2, numClasses: 10 }, 0);
    const trainer = new DiTTrainer(model, OFFICIAL_OBJECTIVE, data, trainConfig({ steps: 60, batch: 16, lr: 1e-3, emaDecay: 0.9 }));
    const losses: number[] = [], live: number[] = [];
    while (trainer.step < 60) {
      trainer.trainStep((trainer.step + 1) % 10 === 0);
      if (trainer.step % 10 === 0) { const m = await trainer.metrics(); losses.push(m.loss); live.push(m.liveMiB); }
    }
    await trainer.checkFinite();
    // Live GPU memory is flat across the training loop (after the first steps allocate the optimizer state).
    expect(new Set(live.slice(1)).size, `live MiB per log: ${live.join(', ')}`).to.equal(1);
    const first = losses.slice(0, 2).reduce((a, b) => a + b) / 2, last = losses.slice(-2).reduce((a, b) => a + b) / 2;
    expect(last).to.be.lessThan(first);
    const ck = await trainer.checkpoint();
    await writeSafetensors(path.join(dir, 'dit.safetensors'), ck.tensors, ck.metadata);
    const w = await readWeights(path.join(dir, 'dit.safetensors'));
    expect(w.metadata.weights).to.equal('ema');
    const re = ditFromWeights(w);
    expect(re.config).to.deep.include({ hiddenSize: 32, depth: 2, numClasses: 10 });
    // The default weights are the EMA's; the raw model's on request.
    expect(Array.from(await read(re.namedTensors()[1][1]))).to.deep.equal(Array.from(await read(trainer.ema.shadow[1])));
    const raw = ditFromWeights(await readWeights(path.join(dir, 'dit.safetensors'), { ema: false }));
    expect(Array.from(await read(raw.namedTensors()[1][1]))).to.deep.equal(Array.from(await read(model.namedTensors()[1][1])));
    trainer.dispose(); model.dispose(); re.dispose(); raw.dispose();
  });
});

/**
 * A square [B, C, n, n] grid transformed as torch does, written out pixel by pixel: k = 0–3 turns of
 * torch.rot90(t, k, (2, 3)) (one turn: out[i][j] = t[j][n − 1 − i]), 4 torch.flip(t, (2,)), 5 F.avg_pool2d(t, 2).
 */
function transformedOnHost(t: Float32Array, [B, C, n]: readonly number[], k: number): { data: Float32Array; shape: number[] } {
  const m = k === 5 ? n / 2 : n;
  const out = new Float32Array(B * C * m * m);
  for (let bc = 0; bc < B * C; bc++) for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) {
    const at = (r: number, c: number) => t[(bc * n + r) * n + c];
    out[(bc * m + i) * m + j] = [
      () => at(i, j), () => at(j, n - 1 - i), () => at(n - 1 - i, n - 1 - j), () => at(n - 1 - j, i), () => at(n - 1 - i, j),
      () => (at(2 * i, 2 * j) + at(2 * i, 2 * j + 1) + at(2 * i + 1, 2 * j) + at(2 * i + 1, 2 * j + 1)) / 4,
    ][k]();
  }
  return { data: out, shape: [B, C, m, m] };
}
