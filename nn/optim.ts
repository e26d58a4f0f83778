// AdamW (torch.optim.AdamW semantics), EMA of parameters, and global-norm gradient clipping, all as fused
// multi-tensor GPU kernels (a few dispatches for a whole model) with no readback in the step.
import { Tensor, noGrad, keep, scope } from '../engine/tensor.js';
import { adamwUpdate, emaUpdate, globalNorm, clipFactor } from '../kernels/optim.js';
import { full, zeros, map } from '../kernels/elementwise.js';

export interface AdamWOptions { lr?: number; betas?: [number, number]; eps?: number; weightDecay?: number; clipGradNorm?: number }

export class AdamW {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly clipGradNorm: number | null;
  stepCount = 0;
  private readonly state = new Map<Tensor, { m: Tensor; v: Tensor }>();
  private readonly one: Tensor;
  /** The last global gradient norm (a GPU scalar) when clipping is on; read it every N steps. */
  lastGradNorm: Tensor | null = null;

  /** Defaults are torch's: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01. DiT uses lr 1e-4, wd 0. */
  constructor(readonly params: Tensor[], o: AdamWOptions = {}) {
    this.lr = o.lr ?? 1e-3;
    [this.beta1, this.beta2] = o.betas ?? [0.9, 0.999];
    this.eps = o.eps ?? 1e-8;
    this.weightDecay = o.weightDecay ?? 1e-2;
    this.clipGradNorm = o.clipGradNorm ?? null;
    this.one = keep(full([1], 1));
  }

  /** Applies one update to every parameter that has a gradient. */
  step(): void {
    this.stepCount++;
    noGrad(() => scope(() => {
      const withGrad = this.params.filter((p) => p.grad);
      let clip = this.one;
      if (this.clipGradNorm !== null) {
        this.lastGradNorm?.dispose();
        this.lastGradNorm = keep(globalNorm(withGrad.map((p) => p.grad!)));
        clip = clipFactor(this.lastGradNorm, this.clipGradNorm);
      }
      const tensors = withGrad.map((p) => ({ p, g: p.grad!, ...this.ensureState(p) }));
      adamwUpdate(tensors, clip, { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay, step: this.stepCount });
    }));
  }

  /** The moment buffers of `p`, created (zero) on first use. */
  ensureState(p: Tensor): { m: Tensor; v: Tensor } {
    let s = this.state.get(p);
    if (!s) { s = { m: keep(zeros(p.shape)), v: keep(zeros(p.shape)) }; this.state.set(p, s); }
    return s;
  }

  zeroGrad(): void {
    for (const p of this.params) { p.grad?.dispose(); p.grad = null; }
  }

  /** Moment buffers per parameter (for checkpoints). */
  moments(p: Tensor): { m: Tensor; v: Tensor } | undefined { return this.state.get(p); }

  dispose(): void {
    for (const s of this.state.values()) { s.m.dispose(); s.v.dispose(); }
    this.state.clear();
    this.one.dispose();
    this.lastGradNorm?.dispose();
  }
}

/** Exponential moving average of parameters (DiT: decay 0.9999 over all named parameters, pos_embed too). */
export class EMA {
  readonly shadow: Tensor[];
  constructor(readonly source: Tensor[], readonly decay = 0.9999) {
    this.shadow = source.map((p) => noGrad(() => keep(map('x', { x: p }, { label: 'ema.init' }))));
  }
  update(decay = this.decay): void {
    noGrad(() => emaUpdate(this.shadow, this.source, decay));
  }
  dispose(): void { for (const t of this.shadow) t.dispose(); }
}

/** Scales every gradient in place (e.g. for gradient accumulation over micro-batches). */
export function scaleGrads(params: Tensor[], s: number): void {
  for (const p of params) if (p.grad) map('o * p', {}, { label: 'scaleGrads', p: s, out: p.grad });
}

/** A learning-rate schedule: linear warm-up over `warmup` steps, then constant or cosine decay to `minRatio`·lr. */
export interface LrSchedule { lr: number; warmup?: number; decay?: 'constant' | 'cosine'; totalSteps?: number; minRatio?: number }

/** The learning rate at 1-based `step` (without a warm-up, step 0 is the undecayed rate). */
export function learningRate(s: LrSchedule, step: number): number {
  const warm = s.warmup ?? 0;
  if (warm > 0 && step <= warm) return (s.lr * step) / warm;
  if (s.decay !== 'cosine') return s.lr;
  const total = s.totalSteps ?? step;
  const f = Math.min(1, (step - warm) / Math.max(1, total - warm));
  const min = s.minRatio ?? 0;
  return s.lr * (min + (1 - min) * 0.5 * (1 + Math.cos(Math.PI * f)));
}
