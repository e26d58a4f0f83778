// Reductions (sum/mean/max over any axes), softmax and log-softmax over the last axis, MSE.
// Every reduction is a chain of [outer, R, inner] reductions over one contiguous block of axes. Long
// reductions with few outputs (bias gradients: [rows, N] → [N]) need more lanes than outputs: up to 256
// values per lane they run in one pass, a workgroup of lanes per group of outputs summing in shared memory;
// longer ones are split into chunks first.
import { Tensor, record, check, fmtShape, numel, type Shape } from '../engine/tensor.js';
import { uniforms, grid, gridArgs, launch, linearIndex, stridesOf } from './util.js';
import { map } from './map.js';
import { normal, type Arr, type Family } from './reference.js';

type ReduceKind = 'sum' | 'max';

/** x [outer, r, inner] → y [outer, nchunks, inner], each output a chunk of r; one lane per output (total). */
const ReduceUniforms = uniforms({ outer: 'u32', r: 'u32', inner: 'u32', chunk: 'u32', nchunks: 'u32', total: 'u32' });
const reduceKernel = (kind: ReduceKind) => /* wgsl */`
${ReduceUniforms.wgsl}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.total) { return; }
  let j = i % u.inner;
  let c = (i / u.inner) % u.nchunks;
  let o = i / (u.inner * u.nchunks);
  let r0 = c * u.chunk;
  let r1 = min(r0 + u.chunk, u.r);
  var acc = ${kind === 'sum' ? '0.0' : '-3.4028234663852886e38'};
  var idx = (o * u.r + r0) * u.inner + j;
  for (var r = r0; r < r1; r++) {
    ${kind === 'sum' ? 'acc += x[idx];' : 'acc = max(acc, x[idx]);'}
    idx += u.inner;
  }
  y[i] = acc;
}`;

/**
 * One workgroup of 256 lanes per IW consecutive outputs: IW lanes along the (contiguous) inner axis times
 * 256/IW lanes along R, each folding every (256/IW)-th row, then a tree in shared memory. With `vec4` (inner a
 * multiple of 4: the bias gradients) each lane folds 4 neighbouring outputs, a quarter of the loads.
 */
const WorkgroupReduceUniforms = uniforms({ outer: 'u32', r: 'u32', inner: 'u32', blocks: 'u32' });
const workgroupReduceKernel = (kind: ReduceKind, IW: number, vec4: boolean) => {
  const T = vec4 ? 'vec4f' : 'f32';
  return /* wgsl */`
${WorkgroupReduceUniforms.wgsl}
@group(0) @binding(1) var<storage, read> x: array<${T}>;
@group(0) @binding(2) var<storage, read_write> y: array<${T}>;
var<workgroup> part: array<${T}, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let w = wid.x + wid.y * nwg.x;
  let o = w / u.blocks;
  let j = (w % u.blocks) * ${IW}u + li % ${IW}u;
  let live = o < u.outer && j < u.inner;
  var acc = ${T}(${kind === 'sum' ? '0.0' : '-3.4028234663852886e38'});
  if (live) {
    for (var r = li / ${IW}u; r < u.r; r += ${256 / IW}u) {
      let v = x[(o * u.r + r) * u.inner + j];
      ${kind === 'sum' ? 'acc += v;' : 'acc = max(acc, v);'}
    }
  }
  part[li] = acc;
  for (var s = 128u; s >= ${IW}u; s = s / 2u) {
    workgroupBarrier();
    if (li < s) { part[li] = ${kind === 'sum' ? 'part[li] + part[li + s]' : 'max(part[li], part[li + s])'}; }
  }
  if (live && li < ${IW}u) { y[o * u.inner + j] = part[li]; }
}`;
};

/** Lanes along the inner axis per workgroup of the one-pass long reduction: a power of two ≥ inner, at most 16. */
const innerLanes = (inner: number) => Math.min(16, 2 ** Math.ceil(Math.log2(inner)));

/** Reduces axes [a0, a1) of x (contiguous block) into shape `outShape`. No autograd. */
function reduceBlock(kind: ReduceKind, x: Tensor, a0: number, a1: number): Tensor {
  const s = x.shape;
  const outer = numel(s.slice(0, a0)), R = numel(s.slice(a0, a1)), inner = numel(s.slice(a1));
  const outShape = [...s.slice(0, a0), ...s.slice(a1)];
  if (outer * inner < 4096 && R > 512 && R <= 256 * (256 / innerLanes(inner))) {
    const vec4 = inner % 4 === 0, width = vec4 ? 4 : 1;
    const IW = innerLanes(inner / width), blocks = Math.ceil(inner / width / IW);
    const out = Tensor.empty(outShape, 'f32', kind);
    launch(kind, workgroupReduceKernel(kind, IW, vec4), [x, out], grid(outer * blocks, 1), WorkgroupReduceUniforms.pack({ outer, r: R, inner: inner / width, blocks }), vec4 ? 'vec4' : undefined);
    return out;
  }
  let src = x;
  let r = R;
  const temps: Tensor[] = [];
  // Split long reductions with few outputs: each pass cuts R by up to 256.
  while (outer * inner < 4096 && r > 512) {
    const nchunks = Math.min(256, Math.ceil(r / 128));
    const chunk = Math.ceil(r / nchunks);
    const part = Tensor.empty([outer, nchunks, inner], 'f32', `${kind}.partial`);
    const total = outer * nchunks * inner;
    launch(kind, reduceKernel(kind), [src, part], grid(total, 64), ReduceUniforms.pack({ outer, r, inner, chunk, nchunks, total }));
    temps.push(part);
    src = part;
    r = nchunks;
  }
  const out = Tensor.empty(outShape, 'f32', kind);
  const total = outer * inner;
  launch(kind, reduceKernel(kind), [src, out], grid(total, 64), ReduceUniforms.pack({ outer, r, inner, chunk: r, nchunks: 1, total }));
  for (const t of temps) t.dispose();
  return out;
}

function normAxes(op: string, x: Tensor, axes?: number | number[]): number[] {
  if (axes === undefined) return x.shape.map((_, i) => i);
  const list = (Array.isArray(axes) ? axes : [axes]).map((a) => (a < 0 ? a + x.ndim : a));
  for (const a of list) check(a >= 0 && a < x.ndim, op, `axis out of range for shape ${fmtShape(x.shape)}`);
  return [...new Set(list)].sort((a, b) => a - b);
}

/** Reduces `axes` (kept as size-1 dims when keepDims), no autograd. */
function reduceAxes(kind: ReduceKind, x: Tensor, axes: number[], keepDims: boolean): Tensor {
  check(x.dtype === 'f32', kind, `expected f32, got ${x.dtype}`);
  let cur = x;
  // Reduce maximal contiguous runs of axes, last run first so earlier axis numbers stay valid.
  const runs: [number, number][] = [];
  for (const a of axes) {
    const last = runs[runs.length - 1];
    if (last && last[1] === a) last[1] = a + 1; else runs.push([a, a + 1]);
  }
  for (let k = runs.length - 1; k >= 0; k--) {
    const next = reduceBlock(kind, cur, runs[k][0], runs[k][1]);
    if (cur !== x) cur.dispose();
    cur = next;
  }
  if (cur === x) cur = map('x', { x }, { label: 'copy' });
  const outShape = keepDims ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
  if (outShape.length === cur.shape.length && outShape.every((d, i) => d === cur.shape[i])) return cur;
  const v = cur.view(outShape);
  cur.dispose();
  return v;
}

export function sum(x: Tensor, axes?: number | number[], keepDims = false): Tensor {
  const ax = normAxes('sum', x, axes);
  const y = reduceAxes('sum', x, ax, keepDims);
  return record('sum', y, [x], [], (g) => [map('g', { g: g.view(x.shape.map((d, i) => (ax.includes(i) ? 1 : d))) }, { label: 'sum.backward', out: Tensor.empty(x.shape, 'f32', 'sum.backward') })]);
}

export function mean(x: Tensor, axes?: number | number[], keepDims = false): Tensor {
  const ax = normAxes('mean', x, axes);
  const n = ax.reduce((acc, a) => acc * x.shape[a], 1);
  const s = reduceAxes('sum', x, ax, keepDims);
  const y = map('o * p', {}, { label: 'mean', p: 1 / n, out: s });
  return record('mean', y, [x], [], (g) => [map('g * p', { g: g.view(x.shape.map((d, i) => (ax.includes(i) ? 1 : d))) }, { label: 'mean.backward', p: 1 / n, out: Tensor.empty(x.shape, 'f32', 'mean.backward') })]);
}

export function max(x: Tensor, axes?: number | number[], keepDims = false): Tensor {
  const ax = normAxes('max', x, axes);
  const y = reduceAxes('max', x, ax, keepDims);
  const kept = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  return record('max', y, [x], [x, y], (g, [xs, ys]) => [
    map('select(T(0.0), g, x == m)', { x: xs, m: ys.view(kept), g: g.view(kept) }, { label: 'max.backward', out: Tensor.empty(x.shape, 'f32', 'max.backward') }),
  ]);
}

/** Sums a broadcast gradient back to `shape` (the inverse of broadcasting). No autograd. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const off = g.ndim - shape.length;
  check(off >= 0, 'sumTo', `cannot reduce ${fmtShape(g.shape)} to ${fmtShape(shape)}`);
  const axes: number[] = [];
  g.shape.forEach((d, i) => { if (i < off || (shape[i - off] === 1 && d !== 1)) axes.push(i); });
  const r = reduceAxes('sum', g, axes, false);
  if (numel(r.shape) === numel(shape) && r.shape.length !== shape.length) {
    const v = r.view(shape);
    r.dispose();
    return v;
  }
  return r;
}

// ------------------------------------------------------------------------------------------ row ops
const RowUniforms = uniforms({ rows: 'u32', n: 'u32' });
const softmaxKernel = (log: boolean) => /* wgsl */`
${RowUniforms.wgsl}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let row = ${linearIndex(64)};
  if (row >= u.rows) { return; }
  let base = row * u.n;
  var m = -3.4028234663852886e38;
  for (var i = 0u; i < u.n; i++) { m = max(m, x[base + i]); }
  var s = 0.0;
  for (var i = 0u; i < u.n; i++) { s += exp(x[base + i] - m); }
  ${log ? 'let lse = m + log(s);' : 'let inv = 1.0 / s;'}
  for (var i = 0u; i < u.n; i++) { y[base + i] = ${log ? 'x[base + i] - lse' : 'exp(x[base + i] - m) * inv'}; }
}`;

const softmaxBackwardKernel = (log: boolean) => /* wgsl */`
${RowUniforms.wgsl}
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let row = ${linearIndex(64)};
  if (row >= u.rows) { return; }
  let base = row * u.n;
  var s = 0.0;
  for (var i = 0u; i < u.n; i++) { s += ${log ? 'g[base + i]' : 'g[base + i] * y[base + i]'}; }
  for (var i = 0u; i < u.n; i++) { dx[base + i] = ${log ? 'g[base + i] - exp(y[base + i]) * s' : 'y[base + i] * (g[base + i] - s)'}; }
}`;

function rowOp(log: boolean, x: Tensor): Tensor {
  const op = log ? 'logSoftmax' : 'softmax';
  check(x.dtype === 'f32' && x.ndim >= 1, op, `expected an f32 tensor, got ${x.dtype} ${fmtShape(x.shape)}`);
  const n = x.shape[x.ndim - 1], rows = x.size / Math.max(1, n);
  const y = Tensor.empty(x.shape, 'f32', op);
  launch(op, softmaxKernel(log), [x, y], grid(rows, 64), RowUniforms.pack({ rows, n }));
  return record(op, y, [x], [y], (g, [ys]) => {
    const dx = Tensor.empty(x.shape, 'f32', `${op}.backward`);
    launch(`${op}.backward`, softmaxBackwardKernel(log), [ys, g, dx], grid(rows, 64), RowUniforms.pack({ rows, n }));
    return [dx];
  });
}

/** Softmax over the last axis. */
export const softmax = (x: Tensor) => rowOp(false, x);
/** Log-softmax over the last axis. */
export const logSoftmax = (x: Tensor) => rowOp(true, x);

/** Mean squared error over all elements, mean((a - b)²), a scalar. */
export function mse(a: Tensor, b: Tensor): Tensor {
  check(a.size === b.size && a.shape.every((d, i) => d === b.shape[i]) && a.ndim === b.ndim, 'mse', `shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} differ`);
  const sq = map('(a - b) * (a - b)', { a, b }, { label: 'mse' });
  const s = reduceAxes('sum', sq, a.shape.map((_, i) => i), false);
  sq.dispose();
  const n = a.size;
  const y = map('o * p', {}, { label: 'mse', p: 1 / n, out: s });
  return record('mse', y, [a, b], [a, b], (g, [as, bs], need) => {
    const d = map('(a - b) * g * p', { a: as, b: bs, g }, { label: 'mse.backward', p: 2 / n });
    return [need[0] ? d : null, need[1] ? map('-d', { d }, { label: 'mse.backward' }) : null];
  });
}

// ------------------------------------------------------------------------------------------ the family (kernels/registry.ts)
/** Reduction of x over `axes` with `f` from `init` (row-major, axes removed from the shape). */
function reduce64(x: Arr, shape: readonly number[], axes: readonly number[], f: (acc: number, v: number) => number, init: number): Float64Array {
  const kept = shape.map((_, d) => !axes.includes(d));
  const outShape = shape.filter((_, d) => kept[d]);
  const out = new Float64Array(outShape.reduce((a, b) => a * b, 1)).fill(init);
  const st = stridesOf(shape);
  for (let i = 0; i < x.length; i++) {
    let o = 0;
    for (let d = 0; d < shape.length; d++) if (kept[d]) o = o * shape[d] + (Math.floor(i / st[d]) % shape[d]);
    out[o] = f(out[o], x[i]);
  }
  return out;
}

/** Softmax (or log-softmax) of each row of width n. */
function softmaxRows64(x: Arr, n: number, log = false): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / n; r++) {
    let m = -Infinity;
    for (let i = 0; i < n; i++) m = Math.max(m, x[r * n + i]);
    let s = 0;
    for (let i = 0; i < n; i++) s += Math.exp(x[r * n + i] - m);
    for (let i = 0; i < n; i++) out[r * n + i] = log ? x[r * n + i] - m - Math.log(s) : Math.exp(x[r * n + i] - m) / s;
  }
  return out;
}

interface ReduceProblem { op: 'sum' | 'mean' | 'max' | 'mse'; shape: number[]; axes: number[] }

export const reduceFamily: Family<ReduceProblem> = {
  name: 'reduce',
  file: 'kernels/reduce.ts',
  variants: {
    'one-pass': 'one lane per output, a loop over the reduced block',
    workgroup: 'long reductions with few outputs (outer·inner < 4096, R > 512), up to 256 values per lane: a workgroup per group of outputs, a tree in shared memory',
    split: 'longer ones: chunk partials first',
  },
  unsupported: () => null,
  problems: (v) => {
    const ops = (shape: number[], axes: number[]): ReduceProblem[] => (['sum', 'mean', 'max'] as const).map((op) => ({ op, shape, axes }));
    if (v === 'split') return [...ops([100000], [0]), ...ops([2, 70000], [1]), ...ops([2, 5000, 20], [1]), { op: 'mse', shape: [70, 1001], axes: [0, 1] }];
    if (v === 'workgroup') return [...ops([3, 5000], [1]), ...ops([2, 1000, 3], [1]), ...ops([2048, 40], [0]), ...ops([1024, 96], [0]), ...ops([777, 10], [0]), { op: 'mse', shape: [60, 1001], axes: [0, 1] }];
    return [...ops([7], [0]), ...ops([3, 17], [1]), ...ops([3, 17], [0]), ...ops([4, 5, 6], [0, 2]), ...ops([2, 3, 4, 5], [1, 2]), { op: 'mse', shape: [5, 10], axes: [0, 1] }];
  },
  describe: (p) => `${p.op} over ${JSON.stringify(p.axes)} of ${fmtShape(p.shape)}`,
  inputs: (p, seed) => (p.op === 'mse' ? [normal(p.shape, seed), normal(p.shape, seed + 1)] : [normal(p.shape, seed)]),
  reference: (p, [x, y]) => {
    if (p.op === 'mse') {
      let s = 0;
      for (let i = 0; i < x.length; i++) s += (x[i] - y[i]) ** 2;
      return [Float64Array.of(s / x.length)];
    }
    const R0 = p.axes.reduce((a, k) => a * p.shape[k], 1);
    const r = p.op === 'max' ? reduce64(x, p.shape, p.axes, Math.max, -Infinity) : reduce64(x, p.shape, p.axes, (a, v) => a + v, 0);
    return [p.op === 'mean' ? r.map((v) => v / R0) : r];
  },
  run: (p, [x, y]) => [p.op === 'mse' ? mse(x, y) : { sum, mean, max }[p.op](x, p.axes)],
  tolerance: (p) => (numel(p.shape) > 10000 ? 1e-5 : 2e-6),
};

interface SoftmaxProblem { rows: number; n: number; log: boolean }

export const softmaxFamily: Family<SoftmaxProblem> = {
  name: 'softmax',
  file: 'kernels/reduce.ts',
  variants: { softmax: 'softmax over the last axis, one lane per row', logSoftmax: 'log-softmax over the last axis' },
  unsupported: () => null,
  problems: (v) => [[5, 33], [3, 4], [2, 1], [7, 257]].map(([rows, n]) => ({ rows, n, log: v === 'logSoftmax' })),
  describe: (p) => `[${p.rows},${p.n}]`,
  inputs: (p, seed) => [normal([p.rows, p.n], seed, 3)],
  reference: (p, [x]) => [softmaxRows64(x, p.n, p.log)],
  run: (p, [x]) => [p.log ? logSoftmax(x) : softmax(x)],
  tolerance: () => 2e-6,
};
