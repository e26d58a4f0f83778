// One DiT training objective evaluation. Gaussian diffusion as train.py: t ~ U{0..T−1}, ε ~ N(0, I),
// loss = mean over the batch of (MSE + VLB) from GaussianDiffusion.trainingLosses; flow matching: u from the
// process's time density, loss = mean of the velocity MSE. The model is in training mode (label dropout).
import { Tensor } from '../engine/tensor.js';
import { mean } from '../kernels/reduce.js';
import { Generator } from '../kernels/random.js';
import { GaussianDiffusion, type TrainingLosses } from './gaussian.js';
import { FlowMatching } from './flow.js';
import type { Denoiser, Process } from './sample.js';

export interface TrainBatch {
  x0: Tensor;
  y: ArrayLike<number>;
  /** Recorded timesteps (Gaussian diffusion: steps; flow: times u) and noise (parity checks); drawn from the generators otherwise. */
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

/** Draws ε ~ N(0, I) from `gen` and the timesteps from `timesteps`, then evaluates the losses. */
export function trainingLoss(model: Denoiser, process: Process, batch: TrainBatch, gen: Generator, timesteps: Generator = gen, opts: LossOptions = {}): TrainLoss {
  const B = batch.x0.shape[0];
  const forward = (xt: Tensor, modelT: number[]) => model.forward(xt, modelT, batch.y);
  if (process instanceof FlowMatching) {
    const u = batch.t ? Array.from(batch.t) : process.drawTimes(timesteps, B);
    const losses = process.trainingLosses(forward, batch.x0, u, batch.noise ?? gen.randn(batch.x0.shape));
    return { ...losses, vb: null, lossMean: mean(losses.loss), t: u };
  }
  const diffusion: GaussianDiffusion = process;
  const t = batch.t ? Array.from(batch.t) : Array.from(timesteps.randHost(B), (u) => Math.min(diffusion.numTimesteps - 1, Math.floor(u * diffusion.numTimesteps)));
  const noise = batch.noise ?? gen.randn(batch.x0.shape);
  const losses = diffusion.trainingLosses(forward, batch.x0, t, noise, opts);
  return { ...losses, lossMean: mean(losses.loss), t };
}
