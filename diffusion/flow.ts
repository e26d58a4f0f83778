// Flow matching (Lipman et al. 2023; SiT, Ma et al. 2024): the linear interpolant between data and noise,
// x_u = (1 − u)·x0 + u·ε for u ∈ [0, 1] (u = 1 is pure noise), and a model trained to predict its velocity
// dx/du = ε − x0 by plain MSE. Same model and FLOPs as DiT's ε-prediction; no learned variance and no VLB.
// Samples integrate the probability-flow ODE from u = 1 to u = 0 with Euler or Heun steps. Time u reaches the
// DiT as 1000·u, the range its sinusoidal timestep embedding was made for.
import { Tensor, check, fmtShape, record } from '../engine/tensor.js';
import { map } from '../kernels/elementwise.js';
import { mean } from '../kernels/reduce.js';
import type { Generator } from '../kernels/random.js';

/** How training times u are drawn: uniform, or logit-normal u = sigmoid(N(mean, std²)) (SD3), which favours the middle. */
export type TimeDensity = { kind: 'uniform' } | { kind: 'logit-normal'; mean: number; std: number };

export type FlowSampler = 'euler' | 'heun';

export interface FlowLosses { loss: Tensor; mse: Tensor }

export class FlowMatching {
  constructor(readonly density: TimeDensity = { kind: 'logit-normal', mean: 0, std: 1 }) {
    if (density.kind === 'logit-normal') check(Number.isFinite(density.mean) && density.std > 0, 'FlowMatching', `logit-normal times need a finite mean and a positive std, got ${density.mean}, ${density.std}`);
  }

  /** The DiT's timestep input at time u. */
  modelTime(u: number): number { return 1000 * u; }

  /** B training times in (0, 1) from `gen`'s uniforms (logit-normal: Box–Muller on two uniforms each). */
  drawTimes(gen: Generator, B: number): number[] {
    if (this.density.kind === 'uniform') return Array.from(gen.randHost(B));
    const { mean: m, std: s } = this.density;
    const r = gen.randHost(2 * B);
    return Array.from({ length: B }, (_, i) => {
      const z = Math.sqrt(-2 * Math.log(Math.max(r[2 * i], 1e-12))) * Math.cos(2 * Math.PI * r[2 * i + 1]);
      return 1 / (1 + Math.exp(-(m + s * z)));
    });
  }

  /** x_u = (1 − u)·x0 + u·ε, u per sample. */
  interpolate(x0: Tensor, u: ArrayLike<number>, noise: Tensor): Tensor {
    check(u.length === x0.shape[0], 'FlowMatching.interpolate', `need one time per sample (${x0.shape[0]}), got ${u.length}`);
    return map('(1.0 - u) * x + u * n', { x: x0, n: noise, u: perSample(u, x0.ndim) }, { label: 'flowInterpolate' });
  }

  /**
   * Per-sample MSE between the model's velocity at x_u and ε − x0 (its gradient flows into the model's
   * output only). `loss` is what is minimised; `mse` the same values, for logging.
   */
  trainingLosses(model: (xt: Tensor, modelT: number[]) => Tensor, x0: Tensor, u: ArrayLike<number>, noise: Tensor): FlowLosses {
    check(noise.shape.every((d, i) => d === x0.shape[i]), 'FlowMatching.trainingLosses', `noise ${fmtShape(noise.shape)} must match x0 ${fmtShape(x0.shape)}`);
    for (const v of Array.from(u)) check(v >= 0 && v <= 1, 'FlowMatching.trainingLosses', `time ${v} is outside [0, 1]`);
    const xt = this.interpolate(x0, u, noise);
    const v = model(xt, Array.from(u, (w) => this.modelTime(w)));
    check(v.shape.every((d, i) => d === x0.shape[i]), 'FlowMatching.trainingLosses', `model output ${fmtShape(v.shape)} should match x0 ${fmtShape(x0.shape)} (a velocity per latent value; no learned sigma)`);
    const mse = velocityMse(v, x0, noise);
    return { loss: mse, mse };
  }

  /** One Euler step of the ODE from u0 to u1 with velocity v: x + (u1 − u0)·v. */
  eulerStep(x: Tensor, v: Tensor, u0: number, u1: number): Tensor {
    return map('x + p * v', { x, v }, { label: 'flowEuler', p: u1 - u0 });
  }

  /** Heun's correction: x + (u1 − u0)·(v0 + v1)/2, v1 the velocity at the Euler step's end. */
  heunStep(x: Tensor, v0: Tensor, v1: Tensor, u0: number, u1: number): Tensor {
    return map('x + p * 0.5 * (a + b)', { x, a: v0, b: v1 }, { label: 'flowHeun', p: u1 - u0 });
  }

  /**
   * One ancestral step from u0 to u1 < u0: the DDPM posterior of the same Gaussian path, with x0 and ε as the
   * velocity predicts them (x̂0 = x − u0·v, ε̂ = x + (1 − u0)·v): x1 = (1 − u1)·x̂0 + √(u1² − s²)·ε̂ + s·z, where
   * s = u1·√(1 − SNR(u0)/SNR(u1)), SNR(u) = ((1 − u)/u)², is the posterior's std. `z` ~ N(0, I) (unused at u1 = 0).
   */
  ancestralStep(x: Tensor, v: Tensor, u0: number, u1: number, z: Tensor | null): Tensor {
    check(u0 > 0 && u0 <= 1 && u1 >= 0 && u1 < u0, 'FlowMatching.ancestralStep', `needs 1 ≥ u0 > u1 ≥ 0, got ${u0}, ${u1}`);
    if (u1 === 0) return this.predictX0(x, v, u0);
    const snrRatio = ((1 - u0) * u1 / (u0 * (1 - u1))) ** 2, s = u1 * Math.sqrt(1 - snrRatio), c = Math.sqrt(Math.max(u1 * u1 - s * s, 0));
    // (1 − u1)·x̂0 + c·ε̂ = p·x + q·v.
    check(z !== null, 'FlowMatching.ancestralStep', 'needs noise z for u1 > 0');
    return map('p * x + q * v + s * z', { x, v, z: z!, s: Tensor.from(Float32Array.of(s), [1]) }, { label: 'flowAncestral', p: 1 - u1 + c, q: c * (1 - u0) - (1 - u1) * u0 });
  }

  /** x̂0 = x_u − u·v (the clean latent the velocity points to; previews). */
  predictX0(x: Tensor, v: Tensor, u: number): Tensor {
    return map('x - p * v', { x, v }, { label: 'flowX0', p: u });
  }

  /** The sampling grid 1 = u_0 > u_1 > … > u_steps = 0, uniform in u. */
  times(steps: number): number[] {
    check(Number.isInteger(steps) && steps >= 1, 'FlowMatching.times', `steps must be a positive integer, got ${steps}`);
    return Array.from({ length: steps + 1 }, (_, k) => 1 - k / steps);
  }
}

/** [B, 1, …] from per-sample values, to broadcast over a sample's elements. */
function perSample(u: ArrayLike<number>, ndim: number): Tensor {
  return Tensor.from(Float32Array.from(u), [u.length, ...new Array(ndim - 1).fill(1)]);
}

/** mean over each sample of (v − (ε − x0))², differentiable in v. */
function velocityMse(v: Tensor, x0: Tensor, noise: Tensor): Tensor {
  const axes = v.shape.map((_, i) => i).slice(1);
  const y = mean(map('(v - (n - x)) * (v - (n - x))', { v, n: noise, x: x0 }, { label: 'flowMse' }), axes);
  return record('flowMse', y, [v], [v, x0, noise], (g, [vs, xs, ns]) => {
    const per = vs.size / vs.shape[0];
    return [map('2.0 * (v - (n - x)) * g * p', { v: vs, n: ns, x: xs, g: g.view([g.size, ...new Array(vs.ndim - 1).fill(1)]) }, { label: 'flowMse.backward', p: 1 / per })];
  });
}
