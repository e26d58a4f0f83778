// One DiT training objective evaluation, as train.py: t ~ U{0..T−1}, ε ~ N(0, I), loss = mean over the batch
// of (MSE + VLB) from GaussianDiffusion.trainingLosses, with the model in training mode (label dropout).
import { Tensor } from '../engine/tensor.js';
import { mean } from '../kernels/reduce.js';
import { Generator } from '../kernels/random.js';
import { GaussianDiffusion, type TrainingLosses } from './gaussian.js';
import type { Denoiser } from './sample.js';

export interface TrainBatch {
  x0: Tensor;
  y: ArrayLike<number>;
  /** Recorded timesteps and noise (parity checks); drawn from `gen` otherwise. */
  t?: ArrayLike<number>;
  noise?: Tensor;
}

export interface LossOptions {
  /** Min-SNR-γ weighting of the MSE term (GaussianDiffusion.trainingLosses); off when undefined. */
  minSnrGamma?: number;
}

export interface TrainLoss extends TrainingLosses {
  /** The scalar objective (loss.mean()). */
  lossMean: Tensor;
  t: number[];
}

/** Draws ε ~ N(0, I) from `gen` and t uniformly over the (spaced) steps from `timesteps`, then evaluates the losses. */
export function trainingLoss(model: Denoiser, diffusion: GaussianDiffusion, batch: TrainBatch, gen: Generator, timesteps: Generator = gen, opts: LossOptions = {}): TrainLoss {
  const B = batch.x0.shape[0];
  const t = batch.t ? Array.from(batch.t) : Array.from(timesteps.randHost(B), (u) => Math.min(diffusion.numTimesteps - 1, Math.floor(u * diffusion.numTimesteps)));
  const noise = batch.noise ?? gen.randn(batch.x0.shape);
  const losses = diffusion.trainingLosses((xt, modelT) => model.forward(xt, modelT, batch.y), batch.x0, t, noise, opts);
  return { ...losses, lossMean: mean(losses.loss), t };
}
