// The diffusion kernels: one elementwise kernel over same-shaped tensors with every per-sample schedule
// coefficient in scope (q_sample, posteriors, p_mean_variance, sampling steps and the VLB terms are each
// one such expression, see diffusion/gaussian.ts), and the WGSL of the Gaussian KL and the discretized
// Gaussian log-likelihood with its derivative.
import { Tensor, check, fmtShape } from '../engine/tensor.js';
import { helpersFor } from './map.js';
import { uniforms, grid, gridArgs, launch, linearIndex } from './util.js';

/** WGSL helpers shared by the diffusion kernels (scalar or vec4 via the map kernel's `T`). */
export const DIFFUSION_WGSL = /* wgsl */`
fn normal_kl(m1: T, lv1: T, m2: T, lv2: T) -> T {
  return 0.5 * (-1.0 + lv2 - lv1 + exp(lv1 - lv2) + (m1 - m2) * (m1 - m2) * exp(-lv2));
}
fn dgll(x: T, m: T, ls: T) -> T {
  let cx = x - m;
  let inv = exp(-ls);
  let cdf_plus = approx_std_normal_cdf(inv * (cx + 1.0 / 255.0));
  let cdf_min = approx_std_normal_cdf(inv * (cx - 1.0 / 255.0));
  let log_cdf_plus = log(max(cdf_plus, T(1e-12)));
  let log_one_minus_cdf_min = log(max(1.0 - cdf_min, T(1e-12)));
  let log_delta = log(max(cdf_plus - cdf_min, T(1e-12)));
  return select(select(log_delta, log_one_minus_cdf_min, x > T(0.999)), log_cdf_plus, x < T(-0.999));
}
// d dgll / d ls (zero where a 1e-12 clamp is active, as in autograd through max()).
fn dgll_dls(x: T, m: T, ls: T) -> T {
  let cx = x - m;
  let inv = exp(-ls);
  let up = inv * (cx + 1.0 / 255.0);
  let um = inv * (cx - 1.0 / 255.0);
  let cdf_plus = approx_std_normal_cdf(up);
  let cdf_min = approx_std_normal_cdf(um);
  let dplus = -approx_std_normal_cdf_grad(up) * up;
  let dmin = -approx_std_normal_cdf_grad(um) * um;
  let g_lo = select(T(0.0), dplus / cdf_plus, cdf_plus > T(1e-12));
  let g_hi = select(T(0.0), -dmin / (1.0 - cdf_min), 1.0 - cdf_min > T(1e-12));
  let g_mid = select(T(0.0), (dplus - dmin) / (cdf_plus - cdf_min), cdf_plus - cdf_min > T(1e-12));
  return select(select(g_mid, g_hi, x > T(0.999)), g_lo, x < T(-0.999));
}`;


/** Names of the packed per-sample coefficients, in the order of `packCoefs`. */
export const COEF_NAMES = ['c1', 'c2', 'ra', 'rm', 'lv1', 'maxl', 'minl', 't0', 'ab', 'abp', 'abn', 'sa', 's1m', 'pv', 'l1m', 'v1m'];

/** n elements, `per` of them per sample, and the scalar p. */
const CoefUniforms = uniforms({ n: 'u32', per: 'u32', p: 'f32' });

/**
 * `expr` elementwise over same-shaped tensors (any number), with the per-sample coefficients of `packed`
 * ([B, 16], see COEF_NAMES) and the scalar `p` in scope.
 */
export function coefMap(expr: string, inputs: Record<string, Tensor>, packed: Tensor, label: string, p = 0): Tensor {
  const names = Object.keys(inputs);
  const first = inputs[names[0]];
  for (const n of names) check(inputs[n].size === first.size, label, `input '${n}' ${fmtShape(inputs[n].shape)} does not match ${fmtShape(first.shape)}`);
  const out = Tensor.empty(first.shape, 'f32', label);
  const n = first.size;
  const K = COEF_NAMES.length;
  const code = /* wgsl */`
alias T = f32;
${CoefUniforms.wgsl}
@group(0) @binding(1) var<storage, read> CF: array<f32>;
${names.map((nm, k) => `@group(0) @binding(${k + 2}) var<storage, read> in_${nm}: array<f32>;`).join('\n')}
@group(0) @binding(${names.length + 2}) var<storage, read_write> OUT: array<f32>;
${DIFFUSION_WGSL}
${helpersFor(DIFFUSION_WGSL)}
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.n) { return; }
  let b = i / u.per;
  let p = u.p;
  ${COEF_NAMES.map((c, k) => `let ${c} = CF[b * ${K}u + ${k}u];`).join(' ')}
  ${names.map((nm) => `let ${nm} = in_${nm}[i];`).join(' ')}
  OUT[i] = ${expr};
}`;
  launch(label, code, [packed, ...names.map((nm) => inputs[nm]), out], grid(n, 64), CoefUniforms.pack({ n, per: n / first.shape[0], p }));
  return out;
}
