// What a denoiser is trained to predict, as data: the official Gaussian diffusion (ε, and the variance with
// learned sigma, over a noise schedule) or flow matching (the velocity of the linear interpolant). A recipe
// holds one; checkpoints record it, since weights alone do not say how to sample them.
import { check } from '../engine/tensor.js';
import { GaussianDiffusion } from './gaussian.js';
import { FlowMatching, type TimeDensity } from './flow.js';
import { SAMPLERS, samplerList, type Process, type Sampling, type SamplerName } from './sample.js';
import type { ScheduleName } from './schedule.js';

export type Objective =
  /** The official DiT: ε-prediction (and the variance with learnSigma) over 1000 steps of a noise schedule; Min-SNR-γ weighting of the MSE when set. */
  | { kind: 'eps'; schedule: ScheduleName; learnSigma: boolean; minSnrGamma: number | null }
  /** Flow matching with the linear interpolant and velocity prediction (SiT); no learned sigma. */
  | { kind: 'flow'; timesteps: TimeDensity };

/** The official train.py: ε and learned sigma, linear schedule, uniform weighting. */
export const OFFICIAL_OBJECTIVE: Objective = { kind: 'eps', schedule: 'linear', learnSigma: true, minSnrGamma: null };

/** Whether the model predicts a variance too (its output then has twice the latent channels). */
export const learnsSigma = (o: Objective) => o.kind === 'eps' && o.learnSigma;

/** Why a model trained with `o` cannot be sampled with `sampler`, or null when it can. */
export function samplerMismatch(o: Objective, sampler: SamplerName): string | null {
  return SAMPLERS[o.kind].includes(sampler) ? null
    : `a model trained with the ${o.kind === 'eps' ? 'Gaussian diffusion (ε)' : 'flow matching'} objective samples with ${samplerList(SAMPLERS[o.kind])}, not '${sampler}'`;
}

/** The process to train with (all 1000 steps), or to sample with a sampler and step count (respaced for DDPM/DDIM). */
export function processFor(o: Objective, sampling?: Pick<Sampling, 'sampler' | 'steps'>): Process {
  const mismatch = sampling ? samplerMismatch(o, sampling.sampler) : null;
  check(mismatch === null, 'sampling', mismatch ?? '');
  if (o.kind === 'flow') return new FlowMatching(o.timesteps);
  const respacing = !sampling ? '' : sampling.sampler === 'ddim' ? `ddim${sampling.steps}` : String(sampling.steps);
  return new GaussianDiffusion({ respacing, learnSigma: o.learnSigma, schedule: o.schedule });
}
