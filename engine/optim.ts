// AdamW (torch.optim.AdamW semantics), EMA of parameters, and global-norm gradient clipping, all as fused
// GPU kernels with no readback in the step.
import { Tensor, noGrad, keep, scope } from './tensor.js';
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
      for (const p of withGrad) {
        let s = this.state.get(p);
        if (!s) { s = { m: keep(zeros(p.shape)), v: keep(zeros(p.shape)) }; this.state.set(p, s); }
        adamwUpdate(p, p.grad!, s.m, s.v, clip, { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay, step: this.stepCount });
      }
    }));
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
    noGrad(() => this.source.forEach((p, i) => emaUpdate(this.shadow[i], p, decay)));
  }
  dispose(): void { for (const t of this.shadow) t.dispose(); }
}
