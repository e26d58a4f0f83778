// DiT training as train.py: latents are posterior samples of the cached VAE moments times the scale factor,
// t ~ U{0..T−1}, loss = (MSE + VLB).mean(), AdamW (lr 1e-4, no weight decay by default), EMA of all weights,
// label dropout 0.1 in training mode. The latent cache lives on the GPU; batches are gathered there.
import { Tensor, scope, noGrad, keep, memory } from '../engine/tensor.js';
import { backward } from '../engine/autograd.js';
import { AdamW, EMA } from '../engine/optim.js';
import { Safetensors, writeSafetensors, type StWriteTensor } from '../engine/safetensors.js';
import { embedding } from '../kernels/embedding.js';
import { map } from '../kernels/elementwise.js';
import { reshape } from '../kernels/shape.js';
import { Generator } from '../kernels/random.js';
import { GaussianDiffusion } from '../diffusion/gaussian.js';
import { trainingLoss } from '../diffusion/train.js';
import { DiT } from './model.js';

/** A latent cache (from `dit vae encode`) on the GPU. */
export class LatentSet {
  readonly count: number;
  readonly shape: [number, number, number];
  readonly labels: Int32Array;
  readonly scale: number;
  readonly classes: string[];
  private readonly mean: Tensor;
  private readonly std: Tensor;

  constructor(st: Safetensors) {
    const s = st.shape('mean');
    this.count = s[0];
    this.shape = [s[1], s[2], s[3]];
    const per = s[1] * s[2] * s[3];
    this.mean = keep(Tensor.from(st.f32('mean'), [this.count, per]));
    const lv = st.f32('logvar');
    this.std = keep(Tensor.from(Float32Array.from(lv, (v) => Math.exp(0.5 * v)), [this.count, per]));
    this.labels = Int32Array.from(st.ints('labels'));
    this.scale = Number(st.metadata.scale_factor ?? 1);
    this.classes = JSON.parse(st.metadata.classes ?? '[]');
  }

  /** scale·(mean + std·ε) for the samples `idx`: [B, C, h, w]. */
  batch(idx: number[], gen: Generator): Tensor {
    const i = Tensor.from(Int32Array.from(idx), [idx.length]);
    const m = embedding(this.mean, i), s = embedding(this.std, i);
    const z = map('(m + s * e) * p', { m, s, e: gen.randn(m.shape) }, { label: 'latentSample', p: this.scale });
    return reshape(z, [idx.length, ...this.shape]);
  }

  dispose(): void { this.mean.dispose(); this.std.dispose(); }
}

export interface DiTTrainOptions {
  steps: number;
  batch?: number;
  lr?: number;
  weightDecay?: number;
  emaDecay?: number;
  /**
   * Warm the EMA decay up as min(decay, (1 + step) / (10 + step)) (default true). The official fixed 0.9999
   * assumes ~400k steps; over a short run a fixed decay keeps a large share of the initial weights (0.999 over
   * 1500 steps: 22%, with the zero-initialised adaLN and final layers), and such an average samples badly.
   */
  emaWarmup?: boolean;
  seed?: number;
  logEvery?: number;
  checkpoint?: string;
  checkpointEvery?: number;
  onLog?: (m: { step: number; loss: number; secs: number; liveMiB: number; stepsPerSec: number }) => void;
}

export async function trainDiT(model: DiT, diffusion: GaussianDiffusion, data: LatentSet, o: DiTTrainOptions): Promise<{ ema: EMA; seconds: number; lastLoss: number }> {
  const B = o.batch ?? 64, seed = o.seed ?? 0, logEvery = o.logEvery ?? 50;
  const opt = new AdamW(model.parameters(), { lr: o.lr ?? 1e-4, weightDecay: o.weightDecay ?? 0 });
  // EMA over every named tensor (pos_embed too), initialised to the weights (update_ema(decay=0)).
  const named = model.namedTensors();
  const ema = new EMA(named.map(([, t]) => t), o.emaDecay ?? 0.9999);
  const gen = new Generator(seed);
  const order = new Generator(seed + 1);
  const t0 = performance.now();
  let last = NaN, lastLogStep = 0, lastLogTime = t0;
  model.train();
  for (let step = 1; step <= o.steps; step++) {
    const idx = Array.from(order.randHost(B), (u) => Math.floor(u * data.count));
    const y = idx.map((i) => data.labels[i]);
    const loss = scope(() => {
      const x0 = data.batch(idx, gen);
      const l = trainingLoss(model, diffusion, { x0, y }, gen).lossMean;
      backward(l);
      opt.step();
      opt.zeroGrad();
      return l;
    });
    ema.update(o.emaWarmup === false ? ema.decay : Math.min(ema.decay, (1 + step) / (10 + step)));
    if (step % logEvery === 0 || step === o.steps) {
      last = await loss.item();
      const now = performance.now();
      o.onLog?.({ step, loss: last, secs: (now - t0) / 1000, liveMiB: memory().liveBytes / 2 ** 20, stepsPerSec: ((step - lastLogStep) * 1000) / (now - lastLogTime) });
      lastLogStep = step; lastLogTime = now;
    }
    loss.dispose();
    if (o.checkpoint && o.checkpointEvery && step % o.checkpointEvery === 0) await saveDiT(model, o.checkpoint, ema, data);
  }
  opt.dispose();
  model.eval();
  if (o.checkpoint) await saveDiT(model, o.checkpoint, ema, data);
  return { ema, seconds: (performance.now() - t0) / 1000, lastLoss: last };
}

/** Writes the EMA weights (what sampling uses, as the released DiT checkpoints) with config and data metadata. */
export async function saveDiT(model: DiT, file: string, ema: EMA | null, data?: LatentSet): Promise<void> {
  const tensors = new Map<string, StWriteTensor>();
  const named = model.namedTensors();
  for (let i = 0; i < named.length; i++) {
    const [n, t] = named[i];
    const src = ema ? ema.shadow[i] : t;
    tensors.set(n, { shape: [...t.shape], data: (await src.data()) as Float32Array });
  }
  const c = model.config;
  const config = { input_size: c.inputSize, patch_size: c.patchSize, in_channels: c.inChannels, hidden_size: c.hiddenSize, depth: c.depth, num_heads: c.numHeads, mlp_ratio: c.mlpRatio, class_dropout_prob: c.classDropoutProb, num_classes: c.numClasses, learn_sigma: c.learnSigma, conditioning: c.conditioning };
  await writeSafetensors(file, tensors, { format: 'pt', weights: ema ? 'ema' : 'model', config: JSON.stringify(config), ...(data ? { scale_factor: String(data.scale), classes: JSON.stringify(data.classes) } : {}) });
}

/** Copies the EMA weights into the model (for sampling right after training). */
export function useEma(model: DiT, ema: EMA): void {
  noGrad(() => model.namedTensors().forEach(([, t], i) => map('x', { x: ema.shadow[i] }, { out: t })));
}
