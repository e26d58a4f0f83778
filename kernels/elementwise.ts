// The elementwise family, defined once: each op is a WGSL expression and its derivative, both evaluated by
// the one kernel generator `map` (kernels/map.ts). Gradients over broadcast dimensions are summed back.
import { Tensor, record, fmtShape, numel, type Shape } from '../engine/tensor.js';
import { setGradientSum } from '../engine/autograd.js';
import { map } from './map.js';
import { sumTo } from './reduce.js';
import { stridesOf } from './util.js';
import { randomNormal, randomUniform, awayFrom, sigmoid64, silu64, gelu64, type Family } from './reference.js';

export { map, helpersFor, broadcastShapes, type MapOptions } from './map.js';

// ------------------------------------------------------------------------------------------ definitions
/** A unary op: `f` in terms of x (and scalars p, q); `df` the input gradient in terms of g, x, y = f(x), p, q. */
export interface UnaryDef { f: string; df: string }

export const UNARY = {
  neg: { f: '-x', df: '-g' },
  exp: { f: 'exp(x)', df: 'g * y' },
  log: { f: 'log(x)', df: 'g / x' },
  sqrt: { f: 'sqrt(x)', df: 'g * 0.5 / y' },
  rsqrt: { f: 'inverseSqrt(x)', df: '-0.5 * g * y * y * y' },
  tanh: { f: 'tanh_(x)', df: 'g * (1.0 - y * y)' },
  sigmoid: { f: 'sigmoid_(x)', df: 'g * y * (1.0 - y)' },
  abs: { f: 'abs(x)', df: 'g * sign(x)' },
  relu: { f: 'max(x, T(0.0))', df: 'select(T(0.0), g, x > T(0.0))' },
  square: { f: 'x * x', df: '2.0 * g * x' },
  silu: { f: 'silu_(x)', df: 'g * silu_grad(x)' },
  // GELU, tanh approximation (DiT's nn.GELU(approximate="tanh")): 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))).
  gelu: { f: 'gelu_tanh(x)', df: 'g * gelu_tanh_grad(x)' },
  scale: { f: 'x * p', df: 'g * p' },
  addScalar: { f: 'x + p', df: 'g' },
  /** x^p for x > 0 (WGSL pow is undefined for negative bases; use square or mul for integer powers). */
  powScalar: { f: 'pow(x, T(p))', df: 'g * p * pow(x, T(p - 1.0))' },
  clamp: { f: 'clamp(x, T(p), T(q))', df: 'select(T(0.0), g, (x >= T(p)) & (x <= T(q)))' },
} satisfies Record<string, UnaryDef>;
export type UnaryOp = keyof typeof UNARY;

const uses = (expr: string, v: string) => new RegExp(`\\b${v}\\b`).test(expr);

export function unary(op: UnaryOp, x: Tensor, p = 0, q = 0): Tensor {
  const def: UnaryDef = UNARY[op];
  const y = map(def.f, { x }, { label: op, p, q });
  const needX = uses(def.df, 'x'), needY = uses(def.df, 'y');
  return record(op, y, [x], [...(needX ? [x] : []), ...(needY ? [y] : [])], (g, saved) => {
    const inputs: Record<string, Tensor> = { g };
    let k = 0;
    if (needX) inputs.x = saved[k++];
    if (needY) inputs.y = saved[k++];
    return [map(def.df, inputs, { label: `${op}.backward`, p, q })];
  });
}

export const neg = (x: Tensor) => unary('neg', x);
export const exp = (x: Tensor) => unary('exp', x);
export const log = (x: Tensor) => unary('log', x);
export const sqrt = (x: Tensor) => unary('sqrt', x);
export const rsqrt = (x: Tensor) => unary('rsqrt', x);
export const tanh = (x: Tensor) => unary('tanh', x);
export const sigmoid = (x: Tensor) => unary('sigmoid', x);
export const abs = (x: Tensor) => unary('abs', x);
export const relu = (x: Tensor) => unary('relu', x);
export const square = (x: Tensor) => unary('square', x);
export const silu = (x: Tensor) => unary('silu', x);
export const gelu = (x: Tensor) => unary('gelu', x);
export const scale = (x: Tensor, s: number) => unary('scale', x, s);
export const addScalar = (x: Tensor, s: number) => unary('addScalar', x, s);
export const powScalar = (x: Tensor, e: number) => unary('powScalar', x, e);
export const clamp = (x: Tensor, lo: number, hi: number) => unary('clamp', x, lo, hi);

/** A binary op: `f` in a, b; `da`, `db` in g, a, b, y = f(a, b). Gradients are summed back over broadcast dims. */
export interface BinaryDef { f: string; da: string; db: string }

export const BINARY = {
  add: { f: 'a + b', da: 'g', db: 'g' },
  sub: { f: 'a - b', da: 'g', db: '-g' },
  mul: { f: 'a * b', da: 'g * b', db: 'g * a' },
  div: { f: 'a / b', da: 'g / b', db: '-g * a / (b * b)' },
  pow: { f: 'pow(a, b)', da: 'g * b * pow(a, b - 1.0)', db: 'g * y * log(a)' },
  maximum: { f: 'max(a, b)', da: 'select(T(0.0), g, a >= b)', db: 'select(g, T(0.0), a >= b)' },
  minimum: { f: 'min(a, b)', da: 'select(T(0.0), g, a <= b)', db: 'select(g, T(0.0), a <= b)' },
} satisfies Record<string, BinaryDef>;
export type BinaryOp = keyof typeof BINARY;

export function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const def: BinaryDef = BINARY[op];
  const y = map(def.f, { a, b }, { label: op });
  const needs = (e: string) => ['a', 'b', 'y'].filter((v) => uses(e, v));
  const used = [...new Set([...needs(def.da), ...needs(def.db)])];
  const savedOf: Record<string, Tensor> = { a, b, y };
  return record(op, y, [a, b], used.map((v) => savedOf[v]), (g, saved, need) => {
    const env: Record<string, Tensor> = {};
    used.forEach((v, i) => { env[v] = saved[i]; });
    const grad = (e: string, shape: Shape) => {
      const ins: Record<string, Tensor> = { g };
      for (const v of needs(e)) ins[v] = env[v];
      const full = e === 'g' ? g : map(e, ins, { label: `${op}.backward` });
      return sumTo(full, shape);
    };
    return [need[0] ? grad(def.da, env.a?.shape ?? a.shape) : null, need[1] ? grad(def.db, env.b?.shape ?? b.shape) : null];
  });
}

export const add = (a: Tensor, b: Tensor) => binary('add', a, b);
export const sub = (a: Tensor, b: Tensor) => binary('sub', a, b);
export const mul = (a: Tensor, b: Tensor) => binary('mul', a, b);
export const div = (a: Tensor, b: Tensor) => binary('div', a, b);
export const pow = (a: Tensor, b: Tensor) => binary('pow', a, b);
export const maximum = (a: Tensor, b: Tensor) => binary('maximum', a, b);
export const minimum = (a: Tensor, b: Tensor) => binary('minimum', a, b);

/** `cond ? a : b` elementwise (cond: f32, nonzero = true), broadcasting all three. */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  const y = map('select(b, a, c != T(0.0))', { c: cond, a, b }, { label: 'where' });
  return record('where', y, [cond, a, b], [cond], (g, [c], need) => [
    null,
    need[1] ? sumTo(map('select(T(0.0), g, c != T(0.0))', { g, c }, { label: 'where.backward' }), a.shape) : null,
    need[2] ? sumTo(map('select(g, T(0.0), c != T(0.0))', { g, c }, { label: 'where.backward' }), b.shape) : null,
  ]);
}

/** dst += src (broadcast src), in place, outside autograd. */
export function addInPlace(dst: Tensor, src: Tensor): Tensor {
  return map('o + s', { s: src }, { label: 'addInPlace', out: dst });
}

// The autograd tape (engine/) sums gradients with these.
setGradientSum({ add: (a, b) => map('a + b', { a, b }, { label: 'gradSum' }), addInPlace });

/** A new tensor of `shape` filled with `value`. */
export function full(shape: Shape, value: number): Tensor {
  const t = Tensor.empty(shape, 'f32', 'full');
  return map('T(p)', {}, { label: 'full', p: value, out: t });
}

export const zeros = (shape: Shape) => full(shape, 0);
export const ones = (shape: Shape) => full(shape, 1);

/** A copy of `x` broadcast to `shape` (its gradient sums back). */
export function expand(x: Tensor, shape: Shape): Tensor {
  const y = map('x', { x }, { label: 'expand', out: Tensor.empty(shape, 'f32', 'expand') });
  return record('expand', y, [x], [], (g) => [sumTo(g, x.shape)]);
}

// ------------------------------------------------------------------------------------------ the family (kernels/registry.ts)
/** NumPy broadcasting: the output shape and, per input, the flat input index of each flat output index. */
function broadcastIndex(shapes: readonly (readonly number[])[]): { shape: number[]; index: (input: number, i: number) => number } {
  const rank = Math.max(...shapes.map((s) => s.length));
  const shape = Array.from({ length: rank }, (_, d) => Math.max(...shapes.map((s) => s[s.length - rank + d] ?? 1)));
  const outStrides = stridesOf(shape);
  const inStrides = shapes.map((s) => { const st = stridesOf(s); return shape.map((_, d) => { const k = d - (rank - s.length); return k < 0 || s[k] === 1 ? 0 : st[k]; }); });
  return {
    shape,
    index: (input, i) => {
      let o = 0;
      for (let d = 0; d < rank; d++) o += (Math.floor(i / outStrides[d]) % shape[d]) * inStrides[input][d];
      return o;
    },
  };
}

type ElementwiseOp = UnaryOp | BinaryOp | 'where';
export interface ElementwiseProblem { op: ElementwiseOp; shapes: number[][] }

/** Scalars p, q of the parametrised unary ops. */
const P = 0.7, Q = 1.3;
const UNARY64: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x, exp: Math.exp, log: Math.log, sqrt: Math.sqrt, rsqrt: (x) => 1 / Math.sqrt(x), tanh: Math.tanh,
  sigmoid: sigmoid64, abs: Math.abs, relu: (x) => Math.max(x, 0), square: (x) => x * x, silu: silu64, gelu: gelu64,
  scale: (x) => x * P, addScalar: (x) => x + P, powScalar: (x) => x ** P, clamp: (x) => Math.min(Math.max(x, P), Q),
};
const BINARY64: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b, sub: (a, b) => a - b, mul: (a, b) => a * b, div: (a, b) => a / b, pow: (a, b) => a ** b, maximum: Math.max, minimum: Math.min,
};
const POSITIVE = new Set<ElementwiseOp>(['log', 'sqrt', 'rsqrt', 'powScalar', 'pow', 'div']);
const KINKS: Partial<Record<ElementwiseOp, number[]>> = { abs: [0], relu: [0], clamp: [P, Q] };

/** Shapes per layout: the map kernel specialises on vec4 vs scalar lanes and on how each input is indexed. */
const LAYOUTS: Record<string, { about: string; unary?: number[]; binary: number[][] }> = {
  vec4: { about: 'same-shaped inputs, n a multiple of 4: vec4 lanes', unary: [3, 32], binary: [[3, 32], [3, 32]] },
  scalar: { about: 'same-shaped inputs, n odd: scalar lanes', unary: [7, 13], binary: [[7, 13], [7, 13]] },
  suffix: { about: 'an input broadcast along leading axes (i % n indexing)', binary: [[3, 4, 8], [8]] },
  general: { about: 'general broadcasting (strided indexing, scalar lanes)', binary: [[3, 1, 5], [4, 1]] },
  splat: { about: 'a one-element input splat over the other', binary: [[5, 8], [1]] },
};

export const elementwiseFamily: Family<ElementwiseProblem> = {
  name: 'elementwise',
  // Declared here beside the op table; the WGSL is the generator's (kernels/map.ts).
  file: 'kernels/map.ts',
  variants: Object.fromEntries(Object.entries(LAYOUTS).map(([k, v]) => [k, v.about])),
  unsupported: () => null,
  problems: (v) => {
    const l = LAYOUTS[v];
    const ops: ElementwiseProblem[] = (Object.keys(BINARY) as BinaryOp[]).map((op) => ({ op, shapes: l.binary }));
    ops.push({ op: 'where', shapes: [l.binary[0], ...l.binary] });
    if (l.unary) ops.push(...(Object.keys(UNARY) as UnaryOp[]).map((op) => ({ op, shapes: [l.unary!] })));
    return ops;
  },
  describe: (p) => `${p.op} ${p.shapes.map((s) => fmtShape(s)).join('·')}`,
  inputs: (p, seed) => p.shapes.map((s, k) => {
    if (p.op === 'where' && k === 0) return { shape: s, data: randomUniform(numel(s), seed, 0, 1).map((u) => (u < 0.5 ? 0 : 1)) };
    const data = POSITIVE.has(p.op) ? randomUniform(numel(s), seed + k, 0.3, 2.5) : awayFrom(randomNormal(numel(s), seed + k, 1.5), KINKS[p.op] ?? []);
    return { shape: s, data, grad: true };
  }),
  reference: (p, x) => {
    const { shape, index } = broadcastIndex(p.shapes);
    const n = numel(shape);
    if (p.op === 'where') return [Float64Array.from({ length: n }, (_, i) => (x[0][index(0, i)] ? x[1][index(1, i)] : x[2][index(2, i)]))];
    if (p.op in UNARY64) return [Float64Array.from(x[0], UNARY64[p.op as UnaryOp])];
    const f = BINARY64[p.op as BinaryOp];
    return [Float64Array.from({ length: n }, (_, i) => f(x[0][index(0, i)], x[1][index(1, i)]))];
  },
  run: (p, x) => {
    if (p.op === 'where') return [where(x[0], x[1], x[2])];
    if (p.op in UNARY) return [unary(p.op as UnaryOp, x[0], P, Q)];
    return [binary(p.op as BinaryOp, x[0], x[1])];
  },
  tolerance: () => 2e-6,
};
