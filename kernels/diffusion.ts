// The diffusion kernels: one elementwise kernel over same-shaped tensors with every per-sample schedule
// coefficient in scope (q_sample, posteriors, p_mean_variance, sampling steps and the VLB terms are each
// one such expression, see diffusion/gaussian.ts), and the WGSL of the Gaussian KL and the discretized
// Gaussian log-likelihood with its derivative.
import { Tensor, check, fmtShape } from '../engine/tensor.js';
import { helpersFor } from './map.js';
import { uniforms, grid, gridArgs, launch, linearIndex } from './util.js';
import { randomNormal, randomUniform, type Family, type HostInput } from './reference.js';

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


/**
 * Names of the packed per-sample coefficients, in the order of `packCoefs` (diffusion/gaussian.ts): the
 * official gaussian_diffusion.py's names of the tables they are looked up in, and `log_betas` (its max_log of
 * the learned range), `min_log` (posterior_log_variance_clipped, or the fixed log variance when the variance
 * is not learned) and `t_is_zero` (1 at t = 0, else 0).
 */
export const COEF_NAMES = [
  'posterior_mean_coef1', 'posterior_mean_coef2', 'sqrt_recip_alphas_cumprod', 'sqrt_recipm1_alphas_cumprod',
  'posterior_log_variance_clipped', 'log_betas', 'min_log', 't_is_zero', 'alphas_cumprod', 'alphas_cumprod_prev',
  'alphas_cumprod_next', 'sqrt_alphas_cumprod', 'sqrt_one_minus_alphas_cumprod', 'posterior_variance',
  'log_one_minus_alphas_cumprod', 'one_minus_alphas_cumprod',
];

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

// ------------------------------------------------------------------------------------------ the family (kernels/registry.ts)
/** The standard normal CDF as the tanh approximation the kernels use (GELU and the diffusion likelihood). */
const approxCdf64 = (x: number) => 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

/** KL(N(m1, e^lv1) ‖ N(m2, e^lv2)) elementwise, as the diffusion kernels. */
const normalKl64 = (m1: number, lv1: number, m2: number, lv2: number) => 0.5 * (-1 + lv2 - lv1 + Math.exp(lv1 - lv2) + (m1 - m2) ** 2 * Math.exp(-lv2));

/** The discretized Gaussian log-likelihood of x ∈ [−1, 1] (bins of 2/255) under N(m, e^(2·ls)), as the diffusion kernels. */
function dgll64(x: number, m: number, ls: number): number {
  const inv = Math.exp(-ls);
  const plus = approxCdf64(inv * (x - m + 1 / 255)), minus = approxCdf64(inv * (x - m - 1 / 255));
  if (x < -0.999) return Math.log(Math.max(plus, 1e-12));
  if (x > 0.999) return Math.log(Math.max(1 - minus, 1e-12));
  return Math.log(Math.max(plus - minus, 1e-12));
}


interface DiffusionProblem { op: 'normal_kl' | 'dgll' | 'dgll_dls' | 'coefs'; B: number; n: number }

const DIFFUSION_EXPR: Record<DiffusionProblem['op'], { expr: string; inputs: string[] }> = {
  normal_kl: { expr: 'normal_kl(v0, v1, v2, v3)', inputs: ['v0', 'v1', 'v2', 'v3'] },
  dgll: { expr: 'dgll(v0, v1, v2)', inputs: ['v0', 'v1', 'v2'] },
  dgll_dls: { expr: 'dgll_dls(v0, v1, v2)', inputs: ['v0', 'v1', 'v2'] },
  coefs: { expr: 'posterior_mean_coef1 * v0 + posterior_mean_coef2 * v1 + sqrt_alphas_cumprod * posterior_log_variance_clipped - alphas_cumprod_prev', inputs: ['v0', 'v1'] },
};

export const diffusionFamily: Family<DiffusionProblem> = {
  name: 'diffusion',
  file: 'kernels/diffusion.ts',
  variants: {
    normal_kl: 'the Gaussian KL (coefMap with the diffusion WGSL)',
    dgll: 'the discretized Gaussian log-likelihood',
    dgll_dls: 'its derivative in the log-scale',
    coefs: 'an expression of the per-sample schedule coefficients',
  },
  unsupported: () => null,
  problems: (v) => [{ op: v as DiffusionProblem['op'], B: 3, n: 37 }],
  describe: (p) => `${p.op} [${p.B},${p.n}]`,
  inputs: (p, seed) => {
    const names = DIFFUSION_EXPR[p.op].inputs;
    const shape = [p.B, p.n];
    const n = p.B * p.n;
    // dgll: x spans [−1, 1] with both edge bins, the mean near x and a log-scale as the diffusion's (where the
    // likelihood is not saturated: in its far tails f32 cannot resolve the difference of two CDF values).
    const x = randomUniform(n, seed, -1, 1).map((v, i) => (i % 11 === 0 ? -1 : i % 13 === 0 ? 1 : v));
    const xs: HostInput[] = p.op.startsWith('dgll')
      ? [{ shape, data: x }, { shape, data: randomNormal(n, seed + 1, 0.01).map((d, i) => x[i] + d) }, { shape, data: randomUniform(n, seed + 2, -3, -1) }]
      : names.map((_, k) => ({ shape, data: randomNormal(n, seed + k, 0.8) }));
    return [...xs, { shape: [p.B, COEF_NAMES.length], data: randomNormal(p.B * COEF_NAMES.length, seed + 9) }];
  },
  reference: (p, x) => {
    const n = p.B * p.n;
    const coef = (name: string, i: number) => x[x.length - 1][Math.floor(i / p.n) * COEF_NAMES.length + COEF_NAMES.indexOf(name)];
    const [a, b, c, d] = x;
    const h = 1e-6;
    const f: Record<DiffusionProblem['op'], (i: number) => number> = {
      normal_kl: (i) => normalKl64(a[i], b[i], c[i], d[i]),
      dgll: (i) => dgll64(a[i], b[i], c[i]),
      // Central differences in float64 (zero where a 1e-12 clamp is active, as the kernel).
      dgll_dls: (i) => (dgll64(a[i], b[i], c[i] + h) - dgll64(a[i], b[i], c[i] - h)) / (2 * h),
      coefs: (i) => coef('posterior_mean_coef1', i) * a[i] + coef('posterior_mean_coef2', i) * b[i] + coef('sqrt_alphas_cumprod', i) * coef('posterior_log_variance_clipped', i) - coef('alphas_cumprod_prev', i),
    };
    return [Float64Array.from({ length: n }, (_, i) => f[p.op](i))];
  },
  run: (p, x) => {
    const names = DIFFUSION_EXPR[p.op].inputs;
    return [coefMap(DIFFUSION_EXPR[p.op].expr, Object.fromEntries(names.map((nm, k) => [nm, x[k]])), x[x.length - 1], `diffusion.${p.op}`)];
  },
  // dgll: a difference of two nearby CDF values in f32.
  tolerance: (p) => (p.op.startsWith('dgll') ? 2e-5 : 2e-6),
};
