// Sampling loops: DDPM ancestral (p_sample_loop) and DDIM (ddim_sample_loop) over any respacing for Gaussian
// diffusion, Euler and Heun steps of the probability-flow ODE for flow matching, with classifier-free guidance
// (doubled batch, null label), a progress callback per step, optional x̂0 previews, and seeded (or recorded)
// noise. One model forward (Heun: two) and one fused update kernel per step; no readback (a progress callback
// waits for each step).
import { Tensor, noGrad, scope, keep, check, fmtShape } from '../engine/tensor.js';
import { gpu } from '../engine/device.js';
import { concat, slice } from '../kernels/shape.js';
import { Generator, deriveSeed } from '../kernels/random.js';
import { GaussianDiffusion } from './gaussian.js';
import { FlowMatching } from './flow.js';

/** What the model was trained as: the official Gaussian diffusion (ε-prediction) or flow matching (velocity). */
export type Process = GaussianDiffusion | FlowMatching;
/** DDPM and DDIM sample Gaussian diffusion; Euler and Heun integrate flow matching's ODE. */
export type SamplerName = 'ddpm' | 'ddim' | 'euler' | 'heun';
/** Flow matching's ddpm is the ancestral sampler of its Gaussian path (`FlowMatching.ancestralStep`). */
export const SAMPLERS: Record<'eps' | 'flow', SamplerName[]> = { eps: ['ddpm', 'ddim'], flow: ['euler', 'heun', 'ddpm'] };
export const SAMPLER_NAMES: SamplerName[] = ['ddpm', 'ddim', 'euler', 'heun'];
/** "euler, heun or ddpm": the samplers of a process, for messages. */
export function samplerList(names: SamplerName[]): string {
  return names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}` : names.join('');
}

/** How samples are drawn: the sampler, its steps, the guidance scale and the channels it guides. */
export interface Sampling {
  sampler: SamplerName;
  /** Gaussian diffusion: steps respaced from the 1000 training steps; flow matching: ODE steps. */
  steps: number;
  /** Classifier-free guidance scale (1: none). */
  cfg: number;
  /** Guide every latent channel, or only the first three as the official sample.py. */
  guide: 'all' | 'official';
  /**
   * Guide only at the noise levels in [lo, hi] — the DiT's timestep input over 1000: flow matching's u, Gaussian
   * diffusion's t/T — and run the conditional model alone elsewhere (Kynkäänniemi et al. 2024: guidance at high
   * noise narrows what is drawn, at low noise it does little). Absent: at every step.
   */
  cfgInterval?: [number, number];
}

/** The official sample.py: ancestral DDPM over 250 steps, guidance 4 on the first three channels. */
export const OFFICIAL_SAMPLING: Sampling = { sampler: 'ddpm', steps: 250, cfg: 4, guide: 'official' };

/** What a denoiser must provide: the DiT model does. */
export interface Denoiser {
  forward(x: Tensor, t: ArrayLike<number>, y: ArrayLike<number>): Tensor;
  forwardWithCfg(x: Tensor, t: ArrayLike<number>, y: ArrayLike<number>, scale: number, opts?: { guideAllChannels?: boolean }): Tensor;
}

export interface StepInfo {
  /** 0-based step number and the total. */
  step: number;
  total: number;
  /** Spaced timestep index and the original timestep the model saw. */
  t: number;
  modelT: number;
  /** The sample after this step and the predicted x̂0 (valid during the callback only; read or copy them). */
  x: Tensor;
  predXstart: Tensor;
}

export interface LoopOptions {
  /** Gaussian diffusion: ddpm (default) or ddim; flow matching: euler, heun (default) or ddpm (ancestral). */
  sampler?: SamplerName;
  /** Flow matching: ODE steps (Gaussian diffusion: the respacing of the GaussianDiffusion given). */
  steps?: number;
  /** DDIM η (0 = deterministic). */
  eta?: number;
  /** Classifier-free guidance scale; > 1 runs the model on the doubled batch (second half: null labels). */
  cfgScale?: number;
  /** Guide all latent channels instead of the official first three. */
  guideAllChannels?: boolean;
  /** Guide only at these noise levels (`Sampling.cfgInterval`). */
  cfgInterval?: [number, number];
  clipDenoised?: boolean;
  /** Seed of the per-step noise (ignored when `noise` is given). */
  seed?: number;
  /** Recorded per-step noise: noise(k) is the z of step k (as official `randn_like`). */
  noise?: (step: number) => Tensor;
  /** Called after each step's GPU work has finished (so progress shown from it is real progress). */
  onStep?: (info: StepInfo) => void | Promise<void>;
}

/** The loop options that draw samples as `s` says. */
export function loopOptions(s: Sampling): LoopOptions {
  return { sampler: s.sampler, steps: s.steps, cfgScale: s.cfg, guideAllChannels: s.guide === 'all', cfgInterval: s.cfgInterval };
}

/** Checks a guidance interval: 0 ≤ lo < hi ≤ 1. */
function checkCfgInterval(interval: [number, number] | undefined): void {
  if (!interval) return;
  const [lo, hi] = interval;
  check(interval.length === 2 && lo >= 0 && lo < hi && hi <= 1, 'sample', `a guidance interval is [lo, hi] with 0 ≤ lo < hi ≤ 1, got [${interval.join(', ')}]`);
}

/**
 * The official loop: starts from `z` (the whole batch; with guidance its second half mirrors the first and
 * `y` holds the null label there) and runs every spaced step from T'−1 down to 0. Returns the final x.
 */
export async function sampleLoop(model: Denoiser, process: Process, z: Tensor, y: ArrayLike<number>, opts: LoopOptions = {}): Promise<Tensor> {
  const B = z.shape[0];
  check(y.length === B, 'sample', `need ${B} labels for z ${fmtShape(z.shape)}, got ${y.length}`);
  checkCfgInterval(opts.cfgInterval);
  if (process instanceof FlowMatching) return flowLoop(model, process, z, y, opts);
  const diffusion = process;
  const sampler = opts.sampler ?? 'ddpm';
  check(SAMPLERS.eps.includes(sampler), 'sample', `Gaussian diffusion samples with ${samplerList(SAMPLERS.eps)}, not '${sampler}'`);
  const gen = new Generator(opts.seed ?? 0);
  const total = diffusion.numTimesteps;
  let x = keep(z.detach());
  for (let k = 0; k < total; k++) {
    const i = total - 1 - k;
    const t = new Array(B).fill(i);
    const modelT = diffusion.modelTimesteps(t);
    const step = scope(() => noGrad(() => {
      const out = modelOutput(model, x, modelT, y, opts);
      const noise = opts.noise ? opts.noise(k) : (sampler === 'ddpm' || (opts.eta ?? 0) > 0 ? gen.randn(z.shape) : null);
      const r = sampler === 'ddpm'
        ? diffusion.pSample(out, x, t, noise!, opts.clipDenoised)
        : diffusion.ddimSample(out, x, t, opts.eta ?? 0, noise, opts.clipDenoised);
      return { sample: r.sample, pred: r.predXstart };
    }));
    x.dispose();
    x = step.sample.keep();
    if (opts.onStep) {
      await gpu().sync('sample');
      await opts.onStep({ step: k, total, t: i, modelT: modelT[0], x, predXstart: step.pred });
    }
    step.pred.dispose();
  }
  return x;
}

/**
 * The model's output with guidance (the doubled batch's halves combined), or plain; outside the guidance
 * interval the conditional half's output for both halves (the second half only mirrors the first).
 */
function modelOutput(model: Denoiser, x: Tensor, modelT: number[], y: ArrayLike<number>, opts: LoopOptions): Tensor {
  const cfg = opts.cfgScale ?? 1;
  if (cfg === 1) return model.forward(x, modelT, y);
  const level = modelT[0] / 1000, interval = opts.cfgInterval;
  if (interval && (level < interval[0] || level > interval[1])) {
    const half = x.shape[0] / 2;
    const cond = model.forward(slice(x, 0, 0, half), modelT.slice(0, half), Array.from(y).slice(0, half));
    return concat([cond, cond], 0);
  }
  return model.forwardWithCfg(x, modelT, y, cfg, { guideAllChannels: opts.guideAllChannels });
}

/**
 * Flow matching: Euler or Heun steps of the ODE from u = 1 to 0 (Heun's last step is Euler, as its end point has
 * no velocity), or ancestral (ddpm) steps, which draw fresh noise each step from the seed.
 */
async function flowLoop(model: Denoiser, flow: FlowMatching, z: Tensor, y: ArrayLike<number>, opts: LoopOptions): Promise<Tensor> {
  const sampler = opts.sampler ?? 'heun';
  check(SAMPLERS.flow.includes(sampler), 'sample', `flow matching samples with ${samplerList(SAMPLERS.flow)}, not '${sampler}'`);
  const us = flow.times(opts.steps ?? 12), total = us.length - 1, B = z.shape[0];
  const at = (u: number) => new Array(B).fill(flow.modelTime(u));
  const gen = new Generator(opts.seed ?? 0);
  let x = keep(z.detach());
  for (let k = 0; k < total; k++) {
    const u0 = us[k], u1 = us[k + 1];
    const step = scope(() => noGrad(() => {
      const v0 = modelOutput(model, x, at(u0), y, opts);
      if (sampler === 'ddpm') return { sample: flow.ancestralStep(x, v0, u0, u1, u1 > 0 ? gen.randn(z.shape) : null), pred: flow.predictX0(x, v0, u0) };
      const euler = flow.eulerStep(x, v0, u0, u1);
      const sample = sampler === 'heun' && u1 > 0 ? flow.heunStep(x, v0, modelOutput(model, euler, at(u1), y, opts), u0, u1) : euler;
      return { sample, pred: flow.predictX0(x, v0, u0) };
    }));
    x.dispose();
    x = step.sample.keep();
    if (opts.onStep) {
      await gpu().sync('sample');
      await opts.onStep({ step: k, total, t: total - 1 - k, modelT: flow.modelTime(u0), x, predXstart: step.pred });
    }
    step.pred.dispose();
  }
  return x;
}

export interface GenerateOptions extends LoopOptions {
  /** The null class label (DiT: numClasses). */
  nullLabel: number;
}

/**
 * Samples one latent per label as DiT's sample.py: z ~ N(0, I) from `seed`; with guidance, z and the labels
 * are doubled (null labels second) and the first half of the result is kept.
 */
export async function generate(model: Denoiser, process: Process, labels: number[], latentShape: [number, number, number], opts: GenerateOptions): Promise<Tensor> {
  const n = labels.length;
  const cfg = opts.cfgScale ?? 1;
  const seed = opts.seed ?? 0;
  const z0 = new Generator(deriveSeed(seed, 'sample.latents')).randn([n, ...latentShape]);
  const z = cfg !== 1 ? concat([z0, z0], 0) : z0;
  const y = cfg !== 1 ? [...labels, ...new Array(n).fill(opts.nullLabel)] : labels;
  const x = await sampleLoop(model, process, z, y, { ...opts, seed });
  if (z !== z0) z.dispose();
  z0.dispose();
  if (cfg === 1) return x;
  const half = slice(x, 0, 0, n);
  x.dispose();
  return half;
}
