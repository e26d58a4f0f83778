// A kernel of your own: softplus_β written in WGSL, forward and backward, recorded on the autograd tape so
// gradients flow through it like through any built-in op. Checked against the same math on the CPU.
// Run: node custom-kernel.js
import {
  getDevice, closeDevice, Tensor, record, launch, uniforms, dispatchGrid, linearIndex, gridArgs, checkDtype,
  linear, mean, square, backward,
} from 'dit-webgpu/engine';

const WG = 64;
// The uniform block, declared once: its WGSL (struct P and the binding `u` at 0) and its packer.
const Softplus = uniforms({ n: 'u32', beta: 'f32' });
const HEADER = /* wgsl */ `
${Softplus.wgsl}
@group(0) @binding(1) var<storage, read> x: array<f32>;`;
// y = log(1 + exp(βx)) / β, in a form that stays finite for large |βx|.
const FORWARD = /* wgsl */ `${HEADER}
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(${WG}) fn main(${gridArgs}) {
  let i = ${linearIndex(WG)};
  if (i >= u.n) { return; }
  let z = u.beta * x[i];
  y[i] = (max(z, 0.0) + log(1.0 + exp(-abs(z)))) / u.beta;
}`;
// dx = g · sigmoid(βx)
const BACKWARD = /* wgsl */ `${HEADER}
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@compute @workgroup_size(${WG}) fn main(${gridArgs}) {
  let i = ${linearIndex(WG)};
  if (i >= u.n) { return; }
  dx[i] = g[i] / (1.0 + exp(-u.beta * x[i]));
}`;

/** softplus_β(x), elementwise, differentiable. */
export function softplus(x: Tensor, beta = 1): Tensor {
  checkDtype('softplus', x, 'f32');                       // a ShapeError naming the op otherwise
  const y = Tensor.empty(x.shape);
  launch('softplus', FORWARD, [x, y], dispatchGrid(x.size, WG), Softplus.pack({ n: x.size, beta }));
  // Save x for the backward; it returns one gradient per input.
  return record('softplus', y, [x], [x], (g, [xs]) => {
    const dx = Tensor.empty(xs.shape);
    launch('softplus.backward', BACKWARD, [xs, g, dx], dispatchGrid(xs.size, WG), Softplus.pack({ n: xs.size, beta }));
    return [dx];
  });
}

await getDevice();
const B = 5, I = 3, O = 4, beta = 2;
const xv = Float32Array.from({ length: B * I }, (_, i) => Math.sin(i + 1));
const wv = Float32Array.from({ length: O * I }, (_, i) => Math.cos(i) / 2);
const w = Tensor.from(wv, [O, I]).setRequiresGrad();
// loss = mean(softplus(x·wᵀ)²): built-in ops around the custom one.
const loss = mean(square(softplus(linear(Tensor.from(xv, [B, I]), w), beta)));
backward(loss);
const got = { loss: await loss.item(), grad: await w.grad!.data() };

// The same on the CPU.
const sp = (z: number) => Math.log1p(Math.exp(beta * z)) / beta, sig = (z: number) => 1 / (1 + Math.exp(-beta * z));
let want = 0;
const grad = new Float64Array(O * I);
for (let b = 0; b < B; b++) for (let o = 0; o < O; o++) {
  let h = 0;
  for (let i = 0; i < I; i++) h += xv[b * I + i] * wv[o * I + i];
  want += sp(h) ** 2 / (B * O);
  for (let i = 0; i < I; i++) grad[o * I + i] += ((2 * sp(h)) / (B * O)) * sig(h) * xv[b * I + i];
}
const gradErr = Math.max(...Array.from(grad, (g, k) => Math.abs(g - got.grad[k])));
console.log(`loss ${got.loss.toFixed(6)} (CPU ${want.toFixed(6)}), max |∂w − CPU| ${gradErr.toExponential(2)}`);
await closeDevice();
if (Math.abs(got.loss - want) > 1e-5 || gradErr > 1e-5) throw new Error('softplus does not match the CPU');
