// Row-wise cosine similarity cos_i = ⟨p_i, y_i⟩ / (‖p_i‖·‖y_i‖) of two [N, F] matrices, differentiable in p:
// representation alignment (REPA) pulls a projection of the DiT's tokens towards a teacher's features with it.
// One workgroup lane per row for the forward (F is small: a teacher's width), one lane per element for the
// backward ∂cos_i/∂p_i = (ŷ_i − cos_i·p̂_i) / ‖p_i‖. Norms are floored at 1e-8, as torch's cosine_similarity.
import { Tensor, record, check, fmtShape } from '../engine/tensor.js';
import { uniforms, grid, gridArgs, launch, linearIndex } from './util.js';
import { normal, type Family } from './reference.js';

const CosineUniforms = uniforms({ N: 'u32', F: 'u32' });

const FORWARD = /* wgsl */`
${CosineUniforms.wgsl}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Y: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.N) { return; }
  var py = 0.0; var pp = 0.0; var yy = 0.0;
  for (var k = 0u; k < u.F; k++) {
    let p = X[i * u.F + k]; let y = Y[i * u.F + k];
    py += p * y; pp += p * p; yy += y * y;
  }
  C[i] = py / (max(sqrt(pp), 1e-8) * max(sqrt(yy), 1e-8));
}`;

const BACKWARD = /* wgsl */`
${CosineUniforms.wgsl}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Y: array<f32>;
@group(0) @binding(3) var<storage, read> G: array<f32>;
@group(0) @binding(4) var<storage, read_write> DP: array<f32>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let j = ${linearIndex(64)};
  if (j >= u.N * u.F) { return; }
  let i = j / u.F;
  var py = 0.0; var pp = 0.0; var yy = 0.0;
  for (var k = 0u; k < u.F; k++) {
    let p = X[i * u.F + k]; let y = Y[i * u.F + k];
    py += p * y; pp += p * p; yy += y * y;
  }
  let np = max(sqrt(pp), 1e-8);
  let ny = max(sqrt(yy), 1e-8);
  let cos = py / (np * ny);
  DP[j] = G[i] * (Y[j] / ny - cos * X[j] / np) / np;
}`;

/** cos of each row of `p` [N, F] with the same row of `y` [N, F] → [N]; the gradient flows into `p` only. */
export function rowCosine(p: Tensor, y: Tensor): Tensor {
  const op = 'rowCosine';
  check(p.ndim === 2 && y.ndim === 2 && p.shape[0] === y.shape[0] && p.shape[1] === y.shape[1], op, `p and y must be the same [N, F], got ${fmtShape(p.shape)} and ${fmtShape(y.shape)}`);
  const [N, F] = p.shape;
  const c = Tensor.empty([N], 'f32', op);
  const u = CosineUniforms.pack({ N, F });
  launch(op, FORWARD, [p, y, c], grid(N, 64), u);
  return record(op, c, [p], [p, y], (g, [ps, ys]) => {
    const dp = Tensor.empty([N, F], 'f32', `${op}.backward`);
    launch(`${op}.backward`, BACKWARD, [ps, ys, g, dp], grid(N * F, 64), u);
    return [dp];
  });
}

// ------------------------------------------------------------------------------------------ the family (kernels/registry.ts)
interface CosineProblem { N: number; F: number }

export const cosineFamily: Family<CosineProblem> = {
  name: 'cosine',
  file: 'kernels/cosine.ts',
  variants: { rows: 'row-wise cosine similarity, one lane per row; backward one lane per element' },
  unsupported: () => null,
  problems: () => [{ N: 7, F: 5 }, { N: 130, F: 96 }],
  describe: (p) => `[${p.N},${p.F}]`,
  inputs: (p, seed) => [normal([p.N, p.F], seed), normal([p.N, p.F], seed + 1, 1, false)],
  reference: (p, [x, y]) => [Float64Array.from({ length: p.N }, (_, i) => {
    let xy = 0, xx = 0, yy = 0;
    for (let k = 0; k < p.F; k++) { const a = x[i * p.F + k], b = y[i * p.F + k]; xy += a * b; xx += a * a; yy += b * b; }
    return xy / (Math.max(Math.sqrt(xx), 1e-8) * Math.max(Math.sqrt(yy), 1e-8));
  })],
  run: (_p, [x, y]) => [rowCosine(x, y)],
  tolerance: () => 1e-5,
};
