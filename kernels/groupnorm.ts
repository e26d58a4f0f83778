// GroupNorm over [B, C, ...spatial] with a per-channel affine (eps configurable, 1e-6 as the SD VAE), with
// SiLU optionally fused after it (the VAE's norm → SiLU pairs), and its backward. Statistics per (b, group)
// are reduced by one lane each (mean, then the variance around it); the rest is elementwise.
import { Tensor, record, check, fmtShape } from '../engine/tensor.js';
import { uniforms, grid, gridArgs, launch, linearIndex } from './util.js';
import { helpersFor } from './map.js';
import { normal, randomNormal, silu64, type Arr, type Family } from './reference.js';

/** The shared SiLU and its derivative, for the kernels with the activation fused. */
const siluFns = (silu: boolean) => (silu ? `alias T = f32;\n${helpersFor('silu_() silu_grad()')}` : '');

/** BG groups of n values each. */
const StatsUniforms = uniforms({ BG: 'u32', n: 'u32', eps: 'f32' });
const STATS = /* wgsl */`
${StatsUniforms.wgsl}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> S: array<vec2f>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let g = ${linearIndex(64)};
  if (g >= u.BG) { return; }
  let base = g * u.n;
  var s = 0.0;
  for (var i = 0u; i < u.n; i++) { s += X[base + i]; }
  let mean = s / f32(u.n);
  var q = 0.0;
  for (var i = 0u; i < u.n; i++) { let d = X[base + i] - mean; q += d * d; }
  S[g] = vec2f(mean, inverseSqrt(q / f32(u.n) + u.eps));
}`;

/** One lane per element (total) of [B, C, HW], cg channels per group. */
const ElementUniforms = uniforms({ total: 'u32', HW: 'u32', C: 'u32', cg: 'u32' });

// Each group is contiguous in NCHW: channels g·C/G … (g+1)·C/G − 1, all spatial positions.
const NORMALIZE = (silu: boolean) => /* wgsl */`
${ElementUniforms.wgsl}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> S: array<vec2f>;
@group(0) @binding(3) var<storage, read> Wt: array<f32>;
@group(0) @binding(4) var<storage, read> Bs: array<f32>;
@group(0) @binding(5) var<storage, read_write> Y: array<f32>;
${siluFns(silu)}
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.total) { return; }
  let bc = i / u.HW;
  let c = bc % u.C;
  let st = S[(bc / u.C) * (u.C / u.cg) + c / u.cg];
  let v = (X[i] - st.x) * st.y * Wt[c] + Bs[c];
  Y[i] = ${silu ? 'silu_(v)' : 'v'};
}`;

// dŷ (gradient at the affine output, through SiLU when fused), recomputed from x and the stats.
const DYHAT = (silu: boolean) => `
  let xh = (X[i] - st.x) * st.y;
  let v = xh * Wt[c] + Bs[c];
  let dv = ${silu ? 'G[i] * silu_grad(v)' : 'G[i]'};`;

/**
 * Per (b, c), one lane each: Σ_hw dv·x̂ and Σ_hw dv. Everything else the backward needs derives from these:
 * dw[c], db[c] sum them over b; the group sums Σ dx̂ and Σ dx̂·x̂ (dx̂ = dv·w[c]) weight them by w[c].
 */
const PartialUniforms = uniforms({ BC: 'u32', HW: 'u32', C: 'u32', cg: 'u32' });
const PARTIALS = (silu: boolean) => /* wgsl */`
${PartialUniforms.wgsl}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read> S: array<vec2f>;
@group(0) @binding(4) var<storage, read> Wt: array<f32>;
@group(0) @binding(5) var<storage, read> Bs: array<f32>;
@group(0) @binding(6) var<storage, read_write> PS: array<vec2f>;
${siluFns(silu)}
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let bc = ${linearIndex(64)};
  if (bc >= u.BC) { return; }
  let c = bc % u.C;
  let st = S[(bc / u.C) * (u.C / u.cg) + c / u.cg];
  var a = 0.0; var b = 0.0;
  for (var p = 0u; p < u.HW; p++) {
    let i = bc * u.HW + p;
    ${DYHAT(silu)}
    a += dv * xh; b += dv;
  }
  PS[bc] = vec2f(a, b);
}`;

const DX = (silu: boolean) => /* wgsl */`
${ElementUniforms.wgsl}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read> S: array<vec2f>;
@group(0) @binding(4) var<storage, read> Wt: array<f32>;
@group(0) @binding(5) var<storage, read> Bs: array<f32>;
@group(0) @binding(6) var<storage, read> R: array<vec2f>;
@group(0) @binding(7) var<storage, read_write> DXo: array<f32>;
${siluFns(silu)}
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.total) { return; }
  let bc = i / u.HW;
  let c = bc % u.C;
  let gi = (bc / u.C) * (u.C / u.cg) + c / u.cg;
  let st = S[gi];
  ${DYHAT(silu)}
  let r = R[gi];
  DXo[i] = st.y * (dv * Wt[c] - r.x - xh * r.y);
}`;

/** Per (b, group): the means of dx̂ and dx̂·x̂ over the group (dx̂ = dv·w[c]), from the per-channel partials. */
const GroupUniforms = uniforms({ BG: 'u32', C: 'u32', cg: 'u32', HW: 'u32' });
const GROUP_MEANS = /* wgsl */`
${GroupUniforms.wgsl}
@group(0) @binding(1) var<storage, read> PS: array<vec2f>;
@group(0) @binding(2) var<storage, read> Wt: array<f32>;
@group(0) @binding(3) var<storage, read_write> R: array<vec2f>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let g = ${linearIndex(64)};
  if (g >= u.BG) { return; }
  let c0 = g * u.cg;
  var a = 0.0; var b = 0.0;
  for (var k = 0u; k < u.cg; k++) { let w = Wt[(c0 + k) % u.C]; let q = PS[c0 + k]; a += w * q.y; b += w * q.x; }
  let n = f32(u.cg * u.HW);
  R[g] = vec2f(a / n, b / n);
}`;

/** Per channel: dw = Σ_b Σ_hw dv·x̂, db = Σ_b Σ_hw dv. */
const ChannelUniforms = uniforms({ B: 'u32', C: 'u32' });
const CHANNEL_SUMS = /* wgsl */`
${ChannelUniforms.wgsl}
@group(0) @binding(1) var<storage, read> PS: array<vec2f>;
@group(0) @binding(2) var<storage, read_write> DW: array<f32>;
@group(0) @binding(3) var<storage, read_write> DB: array<f32>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let c = ${linearIndex(64)};
  if (c >= u.C) { return; }
  var dw = 0.0; var db = 0.0;
  for (var b = 0u; b < u.B; b++) { let q = PS[b * u.C + c]; dw += q.x; db += q.y; }
  DW[c] = dw; DB[c] = db;
}`;

export interface GroupNormOptions { eps?: number; silu?: boolean }

/** GroupNorm(groups) of x [B, C, ...] with weight/bias [C]; `silu` applies SiLU to the result (fused). */
export function groupNorm(x: Tensor, groups: number, weight: Tensor, bias: Tensor, opts: GroupNormOptions = {}): Tensor {
  const op = 'groupNorm';
  check(x.ndim >= 2 && x.dtype === 'f32', op, `expected f32 [B, C, ...], got ${x.dtype} ${fmtShape(x.shape)}`);
  const [B, C] = x.shape;
  check(C % groups === 0, op, `${C} channels are not divisible into ${groups} groups`);
  check(weight.size === C && bias.size === C, op, `weight and bias must have ${C} elements, got ${fmtShape(weight.shape)} and ${fmtShape(bias.shape)}`);
  const HW = x.size / (B * C), cg = C / groups, n = cg * HW, BG = B * groups;
  const eps = opts.eps ?? 1e-6, silu = !!opts.silu;
  const stats = Tensor.empty([BG, 2], 'f32', `${op}.stats`);
  launch(op, STATS, [x, stats], grid(BG, 64), StatsUniforms.pack({ BG, n, eps }));
  const y = Tensor.empty(x.shape, 'f32', op);
  const shapeP = ElementUniforms.pack({ total: x.size, HW, C, cg });
  launch(op, NORMALIZE(silu), [x, stats, weight, bias, y], grid(x.size, 64), shapeP);
  const out = record(op, y, [x, weight, bias], [x, stats, weight, bias], (g, [xs, ss, ws, bs], need) => {
    const partials = Tensor.empty([B, C, 2], 'f32', `${op}.backward`);
    launch(`${op}.partials`, PARTIALS(silu), [xs, g, ss, ws, bs, partials], grid(B * C, 64), PartialUniforms.pack({ BC: B * C, HW, C, cg }));
    let dx: Tensor | null = null, dw: Tensor | null = null, db: Tensor | null = null;
    if (need[0]) {
      const r = Tensor.empty([BG, 2], 'f32', `${op}.backward`);
      launch(`${op}.groups`, GROUP_MEANS, [partials, ws, r], grid(BG, 64), GroupUniforms.pack({ BG, C, cg, HW }));
      dx = Tensor.empty(x.shape, 'f32', `${op}.backward`);
      launch(`${op}.dx`, DX(silu), [xs, g, ss, ws, bs, r, dx], grid(x.size, 64), shapeP);
      r.dispose();
    }
    if (need[1] || need[2]) {
      dw = Tensor.empty(weight.shape, 'f32', `${op}.backward`);
      db = Tensor.empty(bias.shape, 'f32', `${op}.backward`);
      launch(`${op}.channels`, CHANNEL_SUMS, [partials, dw, db], grid(C, 64), ChannelUniforms.pack({ B, C }));
    }
    partials.dispose();
    return [dx, need[1] ? dw : null, need[2] ? db : null];
  });
  stats.dispose();
  return out;
}

// ------------------------------------------------------------------------------------------ the family (kernels/registry.ts)
/** GroupNorm of x [B, C, HW] in G groups with a per-channel affine. */
function groupNorm64(x: Arr, B: number, C: number, HW: number, G: number, w: Arr, bias: Arr, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  const cg = C / G, n = cg * HW;
  for (let b = 0; b < B; b++) for (let g = 0; g < G; g++) {
    const base = (b * C + g * cg) * HW;
    let m = 0;
    for (let i = 0; i < n; i++) m += x[base + i];
    m /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[base + i] - m) ** 2;
    const rs = 1 / Math.sqrt(v / n + eps);
    for (let i = 0; i < n; i++) { const c = g * cg + Math.floor(i / HW); out[base + i] = (x[base + i] - m) * rs * w[c] + bias[c]; }
  }
  return out;
}

interface GroupNormProblem { B: number; C: number; H: number; W: number; G: number; silu: boolean }

export const groupNormFamily: Family<GroupNormProblem> = {
  name: 'groupnorm',
  file: 'kernels/groupnorm.ts',
  variants: { plain: 'GroupNorm with a per-channel affine', silu: 'GroupNorm with SiLU fused after it' },
  unsupported: () => null,
  problems: (v) => [{ B: 2, C: 6, H: 3, W: 5, G: 3 }, { B: 1, C: 8, H: 7, W: 9, G: 2 }, { B: 3, C: 8, H: 1, W: 1, G: 2 }].map((s) => ({ ...s, silu: v === 'silu' })),
  describe: (p) => `[${p.B},${p.C},${p.H},${p.W}] in ${p.G} groups`,
  inputs: (p, seed) => [{ ...normal([p.B, p.C, p.H, p.W], seed, 2), data: randomNormal(p.B * p.C * p.H * p.W, seed, 2).map((v) => v + 1) }, normal([p.C], seed + 1), normal([p.C], seed + 2)],
  reference: (p, [x, w, b]) => {
    const y = groupNorm64(x, p.B, p.C, p.H * p.W, p.G, w, b, 1e-6);
    return [p.silu ? y.map(silu64) : y];
  },
  run: (p, [x, w, b]) => [groupNorm(x, p.G, w, b, { silu: p.silu })],
  tolerance: () => 3e-6,
};
