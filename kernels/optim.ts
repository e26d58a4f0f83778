// Fused optimizer kernels: one AdamW update (decoupled weight decay, bias correction, optional global-norm
// clip factor read from the GPU) and one EMA update per parameter tensor; the global gradient norm is
// reduced on the GPU so clipping needs no readback.
import { Tensor, check, fmtShape } from '../engine/tensor.js';
import { Params, grid, gridArgs, launch, linearIndex } from './util.js';
import { map } from './elementwise.js';
import { sum } from './reduce.js';

const ADAMW = /* wgsl */`
struct P { n: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, wd: f32, bc1: f32, bc2sqrt: f32 }
@group(0) @binding(0) var<uniform> u: P;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> clip: array<f32>;
@group(0) @binding(3) var<storage, read_write> p: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.n) { return; }
  let gi = g[i] * clip[0];
  // Same operation order as torch.optim.AdamW (single-tensor path).
  let pi = p[i] * (1.0 - u.lr * u.wd);
  let mi = m[i] * u.beta1 + gi * (1.0 - u.beta1);
  let vi = v[i] * u.beta2 + gi * gi * (1.0 - u.beta2);
  let denom = sqrt(vi) / u.bc2sqrt + u.eps;
  p[i] = pi - (u.lr / u.bc1) * (mi / denom);
  m[i] = mi;
  v[i] = vi;
}`;

export interface AdamWStep { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number }

/** One fused AdamW update of `p` with gradient `g`·clip[0] and moments `m`, `v` (all updated in place). */
export function adamwUpdate(p: Tensor, g: Tensor, m: Tensor, v: Tensor, clip: Tensor, s: AdamWStep): void {
  check(g.size === p.size && m.size === p.size && v.size === p.size, 'adamw', `gradient ${fmtShape(g.shape)} does not match parameter ${fmtShape(p.shape)}`);
  const bc1 = 1 - s.beta1 ** s.step, bc2 = 1 - s.beta2 ** s.step;
  const params = new Params().u(p.size).f(s.lr, s.beta1, s.beta2, s.eps, s.weightDecay, bc1, Math.sqrt(bc2));
  launch('adamw', ADAMW, [g, clip, p, m, v], grid(p.size, 64), params);
}

/** ema ← decay·ema + (1 − decay)·p, in place. */
export function emaUpdate(ema: Tensor, p: Tensor, decay: number): void {
  map('o * p + x * q', { x: p }, { label: 'ema', p: decay, q: 1 - decay, out: ema });
}

/** √(Σ‖g‖²) over all gradients, as a one-element tensor (no readback). */
export function globalNorm(grads: Tensor[]): Tensor {
  let total: Tensor | null = null;
  for (const g of grads) {
    const sq = map('x * x', { x: g }, { label: 'gradNorm' });
    const s = sum(sq);
    sq.dispose();
    if (total) { map('o + x', { x: s }, { label: 'gradNorm', out: total }); s.dispose(); } else total = s;
  }
  return map('sqrt(o)', {}, { label: 'gradNorm', out: total ?? map('T(0.0)', {}, { out: Tensor.empty([], 'f32') }) });
}

/** The clip factor min(1, maxNorm / (norm + 1e-6)) as a one-element tensor, as torch's clip_grad_norm_. */
export function clipFactor(norm: Tensor, maxNorm: number): Tensor {
  return map('min(T(1.0), T(p) / (n + 1e-6))', { n: norm }, { label: 'clipFactor', p: maxNorm });
}
