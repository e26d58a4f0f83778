// Gaussian diffusion on the GPU, matching the official code (DIT_SPEC S6): q_sample, posteriors,
// p_mean_variance with the learned-range variance, the training loss (MSE + VLB in bits, stop-gradient on
// the mean for the VLB), and single sampling steps (DDPM ancestral, DDIM) as one fused kernel each.
// Per-timestep coefficients are float64 tables looked up on the CPU and cast to float32, as
// `_extract_into_tensor` does; all tensor math is float32.
import { Tensor, check, fmtShape, record } from '../engine/tensor.js';
import { map } from '../kernels/elementwise.js';
import { mean } from '../kernels/reduce.js';
import { slice } from '../kernels/shape.js';
import { COEF_NAMES, coefMap } from '../kernels/diffusion.js';
import { type DiffusionTables, type ScheduleName, createTables } from './schedule.js';

export type VarianceType = 'learned-range' | 'fixed-large' | 'fixed-small';

export interface DiffusionOptions {
  /** "" (all steps), "250", "10,15,20" or "ddim50". */
  respacing?: string;
  schedule?: ScheduleName;
  steps?: number;
  /** The model predicts the variance interpolation v in channels C..2C (DiT's learn_sigma). */
  learnSigma?: boolean;
  /** Variance when not learned (official: fixed-large). */
  fixedVariance?: 'fixed-large' | 'fixed-small';
}

export interface TrainingLosses { loss: Tensor; mse: Tensor; vb: Tensor | null }

export class GaussianDiffusion {
  readonly tables: DiffusionTables;
  readonly varianceType: VarianceType;
  /** Per-step variance and log-variance when not learned. */
  private readonly fixedVar: Float64Array;
  private readonly fixedLogVar: Float64Array;

  constructor(opts: DiffusionOptions = {}) {
    this.tables = createTables(opts.respacing ?? '', opts.schedule ?? 'linear', opts.steps ?? 1000);
    this.varianceType = opts.learnSigma === false ? (opts.fixedVariance ?? 'fixed-large') : 'learned-range';
    const t = this.tables;
    if (this.varianceType === 'fixed-large') {
      this.fixedVar = Float64Array.from(t.betas, (b, i) => (i === 0 ? t.posteriorVariance[1] : b));
      this.fixedLogVar = Float64Array.from(this.fixedVar, Math.log);
    } else {
      this.fixedVar = t.posteriorVariance;
      this.fixedLogVar = t.posteriorLogVarianceClipped;
    }
  }

  get numTimesteps(): number { return this.tables.numTimesteps; }

  /** The original step the model sees for spaced step indices `t`. */
  modelTimesteps(t: ArrayLike<number>): number[] {
    return Array.from(t, (i) => this.tables.timestepMap[i]);
  }

  private checkT(op: string, t: ArrayLike<number>, B: number): void {
    check(t.length === B, op, `need one timestep per sample (${B}), got ${t.length}`);
    for (const v of Array.from(t)) check(Number.isInteger(v) && v >= 0 && v < this.numTimesteps, op, `timestep ${v} is outside [0, ${this.numTimesteps})`);
  }

  /** x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε. */
  qSample(x0: Tensor, t: ArrayLike<number>, noise: Tensor): Tensor {
    this.checkT('qSample', t, x0.shape[0]);
    return this.dmap('sqrt_alphas_cumprod * x0 + sqrt_one_minus_alphas_cumprod * z', { x0, z: noise }, t, 'qSample');
  }

  /** Mean, variance and log variance of q(x_t | x0) (q_mean_variance). */
  qMeanVariance(x0: Tensor, t: ArrayLike<number>): { mean: Tensor; variance: Tensor; logVariance: Tensor } {
    this.checkT('qMeanVariance', t, x0.shape[0]);
    return {
      mean: this.dmap('sqrt_alphas_cumprod * x0', { x0 }, t, 'qMeanVariance'),
      variance: this.dmap('one_minus_alphas_cumprod + 0.0 * x0', { x0 }, t, 'qMeanVariance'),
      logVariance: this.dmap('log_one_minus_alphas_cumprod + 0.0 * x0', { x0 }, t, 'qMeanVariance'),
    };
  }

  /** Posterior q(x_{t−1} | x_t, x0): mean, variance, clipped log variance. */
  qPosterior(x0: Tensor, xt: Tensor, t: ArrayLike<number>): { mean: Tensor; variance: Tensor; logVarianceClipped: Tensor } {
    this.checkT('qPosterior', t, x0.shape[0]);
    return {
      mean: this.dmap('posterior_mean_coef1 * x0 + posterior_mean_coef2 * xt', { x0, xt }, t, 'qPosterior'),
      variance: this.dmap('posterior_variance + 0.0 * xt', { xt }, t, 'qPosterior'),
      logVarianceClipped: this.dmap('posterior_log_variance_clipped + 0.0 * xt', { xt }, t, 'qPosterior'),
    };
  }

  /** KL(q(x_T | x0) ‖ N(0, I)) in bits per dim, per sample (the prior term of the VLB). */
  priorBpd(x0: Tensor): Tensor {
    const last = new Array(x0.shape[0]).fill(this.numTimesteps - 1);
    // normal_kl(m, l, 0, 0) = ½(exp(l) − 1 − l + m²); at t = T−1, l ≈ −4e-5 and exp(l) − 1 − l cancels in f32,
    // so it is evaluated by its series there (the official f32 value is itself ~1.4e-5 off float64).
    const kl = this.dmap('0.5 * (select(exp(log_one_minus_alphas_cumprod) - 1.0 - log_one_minus_alphas_cumprod, log_one_minus_alphas_cumprod * log_one_minus_alphas_cumprod * (0.5 + log_one_minus_alphas_cumprod / 6.0), abs(log_one_minus_alphas_cumprod) < 1e-3) + sqrt_alphas_cumprod * x0 * sqrt_alphas_cumprod * x0) / 0.6931471805599453', { x0 }, last, 'priorBpd');
    return mean(kl, x0.shape.map((_, i) => i).slice(1));
  }

  /** Splits a model output into ε and (learned-range) v. */
  private splitOut(out: Tensor, C: number): [Tensor, Tensor | null] {
    if (this.varianceType !== 'learned-range') {
      check(out.shape[1] === C, 'diffusion', `model output ${fmtShape(out.shape)} should have ${C} channels (fixed variance)`);
      return [out, null];
    }
    check(out.shape[1] === 2 * C, 'diffusion', `model output ${fmtShape(out.shape)} should have ${2 * C} channels (ε and v) for learned sigma`);
    return [slice(out, 1, 0, C), slice(out, 1, C, 2 * C)];
  }

  /** log variance of p(x_{t−1} | x_t): learned range frac·log β + (1 − frac)·clipped posterior log var. */
  private logVarExpr(hasV: boolean): string {
    return hasV ? '((v + 1.0) / 2.0 * log_betas + (1.0 - (v + 1.0) / 2.0) * min_log)' : 'min_log';
  }

  private x0Expr(clip: boolean): string {
    return clip ? 'clamp(sqrt_recip_alphas_cumprod * xt - sqrt_recipm1_alphas_cumprod * eps, -1.0, 1.0)' : '(sqrt_recip_alphas_cumprod * xt - sqrt_recipm1_alphas_cumprod * eps)';
  }

  /** p_mean_variance: mean, variance, log variance, x̂0 (clipped to [−1, 1] when `clipDenoised`). */
  pMeanVariance(out: Tensor, xt: Tensor, t: ArrayLike<number>, clipDenoised = false): { mean: Tensor; variance: Tensor; logVariance: Tensor; predXstart: Tensor } {
    this.checkT('pMeanVariance', t, xt.shape[0]);
    const [eps, v] = this.splitOut(out, xt.shape[1]);
    const ins = { xt, eps, ...(v ? { v } : {}) };
    const x0 = this.x0Expr(clipDenoised), lv = this.logVarExpr(!!v);
    return {
      predXstart: this.dmap(x0, ins, t, 'pMeanVariance'),
      mean: this.dmap(`posterior_mean_coef1 * ${x0} + posterior_mean_coef2 * xt`, ins, t, 'pMeanVariance'),
      logVariance: this.dmap(lv, ins, t, 'pMeanVariance'),
      variance: this.dmap(`exp(${lv})`, ins, t, 'pMeanVariance'),
    };
  }

  /** x̂0 from ε: √(1/ᾱ)·x_t − √(1/ᾱ − 1)·ε. */
  predictXstartFromEps(xt: Tensor, t: ArrayLike<number>, eps: Tensor): Tensor {
    return this.dmap('sqrt_recip_alphas_cumprod * xt - sqrt_recipm1_alphas_cumprod * eps', { xt, eps }, t, 'predictXstartFromEps');
  }

  /** ε from x̂0: (√(1/ᾱ)·x_t − x̂0) / √(1/ᾱ − 1). */
  predictEpsFromXstart(xt: Tensor, t: ArrayLike<number>, x0: Tensor): Tensor {
    return this.dmap('(sqrt_recip_alphas_cumprod * xt - x0) / sqrt_recipm1_alphas_cumprod', { xt, x0 }, t, 'predictEpsFromXstart');
  }

  /** One ancestral step (p_sample), one fused kernel: x_{t−1} = mean + 1[t≠0]·exp(½ log var)·z. */
  pSample(out: Tensor, xt: Tensor, t: ArrayLike<number>, noise: Tensor, clipDenoised = false): { sample: Tensor; predXstart: Tensor } {
    this.checkT('pSample', t, xt.shape[0]);
    const [eps, v] = this.splitOut(out, xt.shape[1]);
    const ins = { xt, eps, z: noise, ...(v ? { v } : {}) };
    const x0 = this.x0Expr(clipDenoised);
    return {
      sample: this.dmap(`posterior_mean_coef1 * ${x0} + posterior_mean_coef2 * xt + (1.0 - t_is_zero) * exp(0.5 * ${this.logVarExpr(!!v)}) * z`, ins, t, 'pSample'),
      predXstart: this.dmap(x0, ins, t, 'pSample'),
    };
  }

  /** One DDIM step with η (ddim_sample): σ = η·√((1−ᾱ_prev)/(1−ᾱ))·√(1−ᾱ/ᾱ_prev). */
  ddimSample(out: Tensor, xt: Tensor, t: ArrayLike<number>, eta: number, noise: Tensor | null, clipDenoised = false): { sample: Tensor; predXstart: Tensor } {
    this.checkT('ddimSample', t, xt.shape[0]);
    const [eps] = this.splitOut(out, xt.shape[1]);
    const x0 = this.x0Expr(clipDenoised);
    const sig = '(p * sqrt((1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)) * sqrt(1.0 - alphas_cumprod / alphas_cumprod_prev))';
    const epsP = `((sqrt_recip_alphas_cumprod * xt - ${x0}) / sqrt_recipm1_alphas_cumprod)`;
    const ins = { xt, eps, ...(noise ? { z: noise } : {}) };
    const noiseTerm = noise ? ` + (1.0 - t_is_zero) * ${sig} * z` : '';
    return {
      sample: this.dmap(`${x0} * sqrt(alphas_cumprod_prev) + sqrt(1.0 - alphas_cumprod_prev - ${sig} * ${sig}) * ${epsP}${noiseTerm}`, ins, t, 'ddimSample', eta),
      predXstart: this.dmap(x0, ins, t, 'ddimSample'),
    };
  }

  /** Deterministic DDIM reverse step x_t → x_{t+1} (η = 0). */
  ddimReverseSample(out: Tensor, xt: Tensor, t: ArrayLike<number>, clipDenoised = false): Tensor {
    this.checkT('ddimReverseSample', t, xt.shape[0]);
    const [eps] = this.splitOut(out, xt.shape[1]);
    const x0 = this.x0Expr(clipDenoised);
    return this.dmap(`${x0} * sqrt(alphas_cumprod_next) + sqrt(1.0 - alphas_cumprod_next) * ((sqrt_recip_alphas_cumprod * xt - ${x0}) / sqrt_recipm1_alphas_cumprod)`, { xt, eps }, t, 'ddimReverseSample');
  }

  /**
   * Per-sample variational bound terms in bits (KL for t > 0, decoder NLL at t = 0), with the model mean from
   * the (already detached) ε and the variance from v; differentiable in v.
   */
  vbTermsBpd(x0: Tensor, xt: Tensor, t: ArrayLike<number>, eps: Tensor, v: Tensor | null): Tensor {
    this.checkT('vbTermsBpd', t, xt.shape[0]);
    const r = xt.ndim;
    const packed = this.packCoefs(t);
    // True posterior mean m1 and model mean m2 (from the detached ε), model log variance lv2.
    const m1 = '(posterior_mean_coef1 * x0 + posterior_mean_coef2 * xt)';
    const m2 = '(posterior_mean_coef1 * (sqrt_recip_alphas_cumprod * xt - sqrt_recipm1_alphas_cumprod * eps) + posterior_mean_coef2 * xt)';
    const lv2 = this.logVarExpr(!!v);
    const kl = `normal_kl(${m1}, posterior_log_variance_clipped, ${m2}, ${lv2}) / 0.6931471805599453`;
    const nll = `-dgll(x0, ${m2}, 0.5 * ${lv2}) / 0.6931471805599453`;
    const vins = { x0, xt, eps, ...(v ? { v } : {}) };
    const terms = coefMap(`select(${kl}, ${nll}, t_is_zero != 0.0)`, vins, packed, 'vbTerms');
    const perSample = mean(terms, Array.from({ length: r - 1 }, (_, i) => i + 1));
    terms.dispose();
    if (!v) { packed.dispose(); return perSample; }
    // d/dv of each elementwise term (the mean's 1/n is applied in backward).
    const dlv = '((log_betas - min_log) * 0.5)';
    const dkl = `0.5 * (1.0 - exp(posterior_log_variance_clipped - ${lv2}) - (${m1} - ${m2}) * (${m1} - ${m2}) * exp(-${lv2})) * ${dlv} / 0.6931471805599453`;
    const dnll = `-dgll_dls(x0, ${m2}, 0.5 * ${lv2}) * 0.5 * ${dlv} / 0.6931471805599453`;
    const out = record('vbTerms', perSample, [v], [x0, xt, eps, v, packed], (g, [x0s, xts, epss, vs, ps]) => {
      const d = coefMap(`select(${dkl}, ${dnll}, t_is_zero != 0.0)`, { x0: x0s, xt: xts, eps: epss, v: vs }, ps, 'vbTerms.backward');
      const n = d.size / d.shape[0];
      return [map('d * g * p', { d, g: g.view([g.size, ...new Array(r - 1).fill(1)]) }, { label: 'vbTerms.backward', p: 1 / n })];
    });
    packed.dispose();
    return out;
  }

  /** [B, 16] per-sample coefficients (f32 lookups of the float64 tables), named as in COEF_NAMES. */
  packCoefs(t: ArrayLike<number>): Tensor {
    const T = this.tables;
    const minLog = this.varianceType === 'learned-range' ? T.posteriorLogVarianceClipped : this.fixedLogVar;
    const B = t.length;
    const d = new Float32Array(B * COEF_NAMES.length);
    Array.from(t).forEach((i, b) => {
      d.set([T.posteriorMeanCoef1[i], T.posteriorMeanCoef2[i], T.sqrtRecipAlphasCumprod[i], T.sqrtRecipm1AlphasCumprod[i],
        T.posteriorLogVarianceClipped[i], Math.log(T.betas[i]), minLog[i], i === 0 ? 1 : 0, T.alphasCumprod[i], T.alphasCumprodPrev[i],
        T.alphasCumprodNext[i], T.sqrtAlphasCumprod[i], T.sqrtOneMinusAlphasCumprod[i], T.posteriorVariance[i], T.logOneMinusAlphasCumprod[i], 1 - T.alphasCumprod[i]], b * COEF_NAMES.length);
    });
    return Tensor.from(d, [B, COEF_NAMES.length]);
  }

  /** An elementwise kernel over same-shaped tensors with every per-sample coefficient in scope. */
  dmap(expr: string, inputs: Record<string, Tensor>, t: ArrayLike<number>, label: string, p = 0): Tensor {
    const packed = this.packCoefs(t);
    const y = coefMap(expr, inputs, packed, label, p);
    packed.dispose();
    return y;
  }

  /**
   * training_losses with MSE + learned range: x_t = q_sample(x0, t, ε); out = model(x_t, t');
   * mse = mean_flat((ε − ε̂)²); vb = vb_terms_bpd with ε̂ detached; loss = mse + vb (per sample).
   * Without learned sigma the loss is the MSE alone. With `minSnrGamma` γ the MSE term of the loss is weighted
   * per sample by min(SNR_t, γ)/SNR_t (Min-SNR-γ, Hang et al. 2023): the many nearly noise-free timesteps, whose
   * ε-loss is about texture, stop outweighing the noisy ones where the global layout (and the class) is
   * decided; `mse` stays the unweighted mean.
   */
  trainingLosses(model: (xt: Tensor, modelT: number[]) => Tensor, x0: Tensor, t: ArrayLike<number>, noise: Tensor, opts: { minSnrGamma?: number } = {}): TrainingLosses {
    this.checkT('trainingLosses', t, x0.shape[0]);
    check(noise.shape.every((d, i) => d === x0.shape[i]), 'trainingLosses', `noise ${fmtShape(noise.shape)} must match x0 ${fmtShape(x0.shape)}`);
    const xt = this.qSample(x0, t, noise);
    const out = model(xt, this.modelTimesteps(t));
    const C = x0.shape[1];
    const [eps, v] = this.splitOut(out, C);
    const axes = x0.shape.map((_, i) => i).slice(1);
    const mse = mean(map('(n - e) * (n - e)', { n: noise, e: eps }, { label: 'mse' }), axes);
    const mseT = record('mse', mse, [eps], [noise, eps], (g, [ns, es]) => {
      const n = ns.size / ns.shape[0];
      return [map('-2.0 * (n - e) * g * p', { n: ns, e: es, g: g.view([g.size, ...new Array(x0.ndim - 1).fill(1)]) }, { label: 'mse.backward', p: 1 / n })];
    });
    const mseLoss = opts.minSnrGamma === undefined ? mseT : scalePerSample(mseT, this.minSnrWeights(t, opts.minSnrGamma));
    if (!v) return { loss: mseLoss, mse: mseT, vb: null };
    const vb = this.vbTermsBpd(x0, xt, t, eps.detach(), v);
    return { loss: addPerSample(mseLoss, vb), mse: mseT, vb };
  }

  /** min(SNR_t, γ)/SNR_t with SNR_t = ᾱ_t/(1 − ᾱ_t), in float64, per sample. */
  minSnrWeights(t: ArrayLike<number>, gamma: number): Float32Array {
    check(gamma > 0 && Number.isFinite(gamma), 'minSnrWeights', `γ must be a positive number, got ${gamma}`);
    const a = this.tables.alphasCumprod;
    return Float32Array.from(t, (i) => { const snr = a[i] / (1 - a[i]); return Math.min(snr, gamma) / snr; });
  }
}

/** a[b]·w[b] for a per-sample loss [B]; the gradient is scaled the same way. */
function scalePerSample(a: Tensor, w: Float32Array): Tensor {
  const wt = Tensor.from(w, [w.length]);
  const y = map('a * w', { a, w: wt }, { label: 'lossWeight' });
  return record('lossWeight', y, [a], [wt], (g, [ws]) => [map('g * w', { g, w: ws }, { label: 'lossWeight.backward' })]);
}

function addPerSample(a: Tensor, b: Tensor): Tensor {
  const y = map('a + b', { a, b }, { label: 'loss' });
  return record('add', y, [a, b], [], (g) => [g, g]);
}
