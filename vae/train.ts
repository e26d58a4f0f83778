// Trains a VAE with the engine: reconstruction (L1 or MSE) of a posterior sample + a small KL weight, optionally
// EQ-VAE's equivariance term, AdamW, seeded batches with random flips, periodic held-out PSNR, atomic
// checkpoints. Also encodes a dataset into a latent cache (posterior moments + the scale factor) for DiT training.
import { Tensor, scope, noGrad, keep, memory, record } from '../engine/tensor.js';
import { backward } from '../engine/autograd.js';
import { AdamW, learningRate } from '../nn/optim.js';
import { writeSafetensors, refuseNonFinite, type StWriteTensor } from '../engine/safetensors.js';
import { NonFiniteError } from '../engine/errors.js';
import { map, abs, sub, add, square, exp, addScalar, scale } from '../kernels/elementwise.js';
import { mean, mse } from '../kernels/reduce.js';
import { flip, rot90 } from '../kernels/shape.js';
import { avgPool2x } from '../kernels/conv2d.js';
import { Generator, deriveSeed, type SeedRole } from '../kernels/random.js';
import { imageBatch, type ImageDataset } from '../data/dataset.js';
import { toImage, grid, writePng } from '../data/png.js';
import { AutoencoderKL, type VaeConfig } from './model.js';
import { psnrEntries } from './checkpoint.js';

/** The KL term's weight unless a run sets one (light: the latent scale is normalised afterwards). */
export const DEFAULT_KL_WEIGHT = 1e-6;

export interface VaeTrainOptions {
  steps: number;
  batch?: number;
  lr?: number;
  klWeight?: number;
  loss?: 'l1' | 'mse';
  /**
   * Weight of EQ-VAE's equivariance loss (Kosmopoulos et al. 2025; 0 or absent: off): each step one transform τ
   * of `equivarianceTransform`, and the decoder asked for τ(image) from τ(latent) with the reconstruction loss.
   */
  equivariance?: number;
  /** Cosine decay of the learning rate to 10% over the run (else constant). */
  cosine?: boolean;
  seed?: number;
  /** Evaluate held-out PSNR every N steps (and at the end). */
  evalEvery?: number;
  evalImages?: number;
  checkpoint?: string;
  /** Metadata written into the checkpoint of `step` beside the config (what trained it). */
  metadata?: (step: number) => Record<string, string>;
  checkpointEvery?: number;
  onLog?: (m: { step: number; loss?: number; psnr?: number; secs: number; liveMiB: number }) => void;
}

/** Held-out PSNR of the pooled MSE over the first `count` images (pixels in [-1, 1], so the peak-to-peak range is 2). */
export async function psnr(vae: AutoencoderKL, d: ImageDataset, count: number, batch = 32, onProgress?: (done: number) => void): Promise<number> {
  let se = 0, n = 0;
  for (let i = 0; i < Math.min(count, d.count); i += batch) {
    const idx = Array.from({ length: Math.min(batch, Math.min(count, d.count) - i) }, (_, k) => i + k);
    const s = scope(() => noGrad(() => {
      const x = imageBatch(d, idx);
      return mean(map('(a - b) * (a - b)', { a: vae.forward(x), b: x }));
    }));
    se += (await s.item()) * idx.length;
    n += idx.length;
    s.dispose();
    onProgress?.(n);
  }
  return 10 * Math.log10(4 / (se / n));
}

export async function trainVae(vae: AutoencoderKL, train: ImageDataset, test: ImageDataset, o: VaeTrainOptions): Promise<{ psnr: number; seconds: number }> {
  const B = o.batch ?? 32, seed = o.seed ?? 0;
  const opt = new AdamW(vae.parameters(), { lr: o.lr ?? 5e-4, weightDecay: 0 });
  const gen = new Generator(seed);
  const order = new Generator(deriveSeed(seed, 'vae.order'));
  const draws = (name: SeedRole) => { const g = new Generator(deriveSeed(seed, name)); return () => g.randHost(1)[0]; };
  const flipDraw = draws('vae.flip'), eqDraw = draws('vae.equivariance');
  const t0 = performance.now();
  const secs = () => (performance.now() - t0) / 1000;
  const klWeight = o.klWeight ?? DEFAULT_KL_WEIGHT;
  const evalImages = Math.min(o.evalImages ?? 512, test.count);
  let last = NaN;
  vae.train();
  const lr0 = o.lr ?? 5e-4;
  for (let step = 1; step <= o.steps; step++) {
    // Cosine decay towards 10% from the full rate at step 1 (the schedule's step 0).
    if (o.cosine) opt.lr = learningRate({ lr: lr0, decay: 'cosine', totalSteps: o.steps, minRatio: 0.1 }, step - 1);
    const idx = Array.from(order.randHost(B), (u) => Math.floor(u * train.count));
    const transform = o.equivariance ? Math.floor(eqDraw() * EQUIVARIANCE_TRANSFORMS) : -1;
    const loss = scope(() => {
      const l = vaeLoss(vae, imageBatch(train, idx, flipDraw), gen, { loss: o.loss ?? 'l1', klWeight, equivariance: o.equivariance ?? 0, transform });
      backward(l);
      opt.step();
      opt.zeroGrad();
      return l;
    });
    // Read the loss only every 25 steps: reading back stalls the GPU queue.
    const read = step % 25 === 0 || step === o.steps;
    if (read) last = await loss.item();
    loss.dispose();
    if (read && !Number.isFinite(last)) throw new NonFiniteError(`VAE training diverged: the loss is ${last} at step ${step}`);
    if (step % 25 === 0) o.onLog?.({ step, loss: last, secs: secs(), liveMiB: memory().liveBytes / 2 ** 20 });
    const evalNow = (o.evalEvery && step % o.evalEvery === 0) || step === o.steps;
    if (evalNow) {
      vae.eval();
      const p = await psnr(vae, test, evalImages);
      vae.train();
      o.onLog?.({ step, psnr: p, secs: secs(), liveMiB: memory().liveBytes / 2 ** 20 });
      if (step === o.steps) { await saveVae(vae, o.checkpoint, { ...o.metadata?.(step), ...psnrEntries(p, evalImages) }); opt.dispose(); vae.eval(); return { psnr: p, seconds: secs() }; }
    }
    if (o.checkpoint && o.checkpointEvery && step % o.checkpointEvery === 0) await saveVae(vae, o.checkpoint, o.metadata?.(step));
  }
  opt.dispose();
  return { psnr: NaN, seconds: secs() };
}

/** How many transforms `equivarianceTransform` knows (0 to 5). */
export const EQUIVARIANCE_TRANSFORMS = 6;

/**
 * One of EQ-VAE's transforms of a batch of [B, C, H, W] grids, images and latents alike: k = 0–3 quarter turns,
 * 4 an upside-down flip (the data's own flips are left-right), 5 a 2× down-scaling by 2×2 averages. The small
 * VAE is convolutional, so it decodes a half-size latent to a half-size image.
 */
export function equivarianceTransform(t: Tensor, k: number): Tensor {
  if (k >= 0 && k < 4) return rot90(t, k);
  if (k === 4) return flip(t, [2]);
  if (k === 5) return avgPool2x(t);
  throw new Error(`equivarianceTransform: no transform ${k} (0 to ${EQUIVARIANCE_TRANSFORMS - 1})`);
}

/**
 * A training step's loss for images x: the reconstruction (L1 or MSE) of a posterior sample, + klWeight × the
 * KL per latent element, + equivariance × the reconstruction of τ(x) decoded from τ(that sample) when
 * `transform` (τ's index) is not −1.
 */
export function vaeLoss(vae: AutoencoderKL, x: Tensor, gen: Generator, o: { loss: 'l1' | 'mse'; klWeight: number; equivariance: number; transform: number }): Tensor {
  const recon = (y: Tensor, target: Tensor) => (o.loss === 'mse' ? mse(y, target) : mean(abs(sub(y, target))));
  const post = vae.encode(x);
  const z = post.sample(gen.randn(post.mean.shape));
  // KL per latent element ½(m² + e^l − 1 − l), weighted lightly (the latent scale is normalised afterwards).
  const kl = scale(mean(sub(add(square(post.mean), exp(post.logvar)), addScalar(post.logvar, 1))), 0.5);
  const l = recordSum(recon(vae.decode(z), x), kl, o.klWeight);
  if (o.transform < 0 || !o.equivariance) return l;
  return recordSum(l, recon(vae.decode(equivarianceTransform(z, o.transform)), equivarianceTransform(x, o.transform)), o.equivariance);
}

/** r + w·k for one-element tensors, with autograd. */
function recordSum(r: Tensor, k: Tensor, w: number): Tensor {
  const y = map('a + p * b', { a: r, b: k }, { label: 'vaeLoss', p: w });
  return record('vaeLoss', y, [r, k], [], (g) => [g, map('g * p', { g }, { p: w })]);
}

/** The VAE weights (diffusers names) and metadata (its config, `extra`) as `saveVae` writes them (a NonFiniteError if any is NaN or ±inf); browser-safe. */
export async function vaeCheckpoint(vae: AutoencoderKL, extra: Record<string, string> = {}): Promise<{ tensors: Map<string, StWriteTensor>; metadata: Record<string, string> }> {
  const tensors: Map<string, StWriteTensor> = await vae.hostStateDict();
  refuseNonFinite(tensors, 'the VAE weights');
  const c: VaeConfig = vae.config;
  const config = { in_channels: c.inChannels, out_channels: c.outChannels, block_out_channels: c.blockOutChannels, layers_per_block: c.layersPerBlock, norm_num_groups: c.normNumGroups, latent_channels: c.latentChannels, scaling_factor: c.scalingFactor };
  return { tensors, metadata: { format: 'pt', config: JSON.stringify(config), ...extra } };
}

/** Writes the VAE weights (diffusers names) with its config in the metadata. */
export async function saveVae(vae: AutoencoderKL, file?: string, extra: Record<string, string> = {}): Promise<void> {
  if (!file) return;
  const { tensors, metadata } = await vaeCheckpoint(vae, extra);
  await writeSafetensors(file, tensors, metadata);
}

export interface EncodeOptions {
  batch?: number; scaleFromData?: boolean; dataset?: string; extraMeta?: Record<string, string>; onProgress?: (done: number) => void; log?: (m: string) => void;
  /** More per-image tensors for the cache (the alignment teacher's features: 'teacher' [N, tokens, F]). */
  extraTensors?: Record<string, StWriteTensor>;
}

/**
 * Encodes a dataset into posterior moments (mean, logvar) [N, L, h, w] plus labels, and the latent scale
 * factor: 1/std of posterior samples for a VAE trained here, or the config's (0.18215 for the SD VAE).
 * Returns the latent cache's tensors and metadata (in memory: a browser serialises them itself).
 */
export async function encodeLatents(vae: AutoencoderKL, d: ImageDataset, opts: EncodeOptions = {}): Promise<{ tensors: Record<string, StWriteTensor>; metadata: Record<string, string>; scale: number }> {
  const B = opts.batch ?? 64;
  const L = vae.config.latentChannels, f = vae.downsampling, h = d.height / f, w = d.width / f;
  const per = L * h * w;
  const means = new Float32Array(d.count * per), logvars = new Float32Array(d.count * per);
  vae.eval();
  for (let i = 0; i < d.count; i += B) {
    const idx = Array.from({ length: Math.min(B, d.count - i) }, (_, k) => i + k);
    const out = scope(() => noGrad(() => { const p = vae.encodeLarge(imageBatch(d, idx), opts.log); return [keep(p.mean.detach()), keep(p.logvar.detach())]; }));
    means.set((await out[0].data()) as Float32Array, i * per);
    logvars.set((await out[1].data()) as Float32Array, i * per);
    out.forEach((t) => t.dispose());
    opts.onProgress?.(Math.min(i + B, d.count));
  }
  let scale = vae.config.scalingFactor;
  if (opts.scaleFromData) {
    // std over posterior samples ≈ √(Var(mean) + E[exp(logvar)])
    let s = 0, s2 = 0, ev = 0;
    for (let i = 0; i < means.length; i++) { s += means[i]; s2 += means[i] * means[i]; ev += Math.exp(logvars[i]); }
    const n = means.length, m = s / n;
    scale = 1 / Math.sqrt(s2 / n - m * m + ev / n);
  }
  return {
    tensors: {
      mean: { shape: [d.count, L, h, w], data: means }, logvar: { shape: [d.count, L, h, w], data: logvars },
      labels: { shape: [d.count], data: Int32Array.from(d.labels) },
      ...opts.extraTensors,
    },
    metadata: { scale_factor: String(scale), classes: JSON.stringify(d.classes), image_size: `${d.height}x${d.width}`, ...(opts.dataset ? { dataset: opts.dataset } : {}), ...opts.extraMeta },
    scale,
  };
}

/** `encodeLatents` written to `file` as a safetensors latent cache (Node). */
export async function encodeDataset(vae: AutoencoderKL, d: ImageDataset, file: string, opts: EncodeOptions = {}): Promise<{ scale: number }> {
  const { tensors, metadata, scale } = await encodeLatents(vae, d, opts);
  await writeSafetensors(file, tensors, metadata);
  return { scale };
}

/** Originals (first row) above their reconstructions (second row). */
export async function reconstructionGrid(v: AutoencoderKL, d: ImageDataset, file: string, n = 8): Promise<void> {
  const x = imageBatch(d, Array.from({ length: n }, (_, i) => i));
  const y = scope(() => noGrad(() => v.forward(x)));
  const [xs, ys] = [(await x.data()) as Float32Array, (await y.data()) as Float32Array];
  const C = d.channels, per = C * d.height * d.width;
  const imgs = [...Array.from({ length: n }, (_, i) => toImage(xs.subarray(i * per, (i + 1) * per), C, d.height, d.width)), ...Array.from({ length: n }, (_, i) => toImage(ys.subarray(i * per, (i + 1) * per), C, d.height, d.width))];
  x.dispose(); y.dispose();
  await writePng(file, grid(imgs, n, 3));
}
