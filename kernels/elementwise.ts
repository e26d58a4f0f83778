// The elementwise family, defined once: each op is a WGSL expression and its derivative, and one generic
// kernel generator turns any such expression over broadcast inputs into a shader (vec4 when the layout
// allows). Forward ops, their backward passes and in-place updates are all instances of `map`.
import { Tensor, record, check, fmtShape, numel, type Shape } from '../engine/tensor.js';
import { Params, grid, gridArgs, launch, linearIndex, stridesOf } from './util.js';
import { sumTo } from './reduce.js';

// ------------------------------------------------------------------------------------------ broadcasting
export function broadcastShapes(op: string, ...shapes: Shape[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - rank + i] ?? 1;
      if (v !== 1) {
        check(d === 1 || d === v, op, `shapes ${shapes.map(fmtShape).join(' and ')} cannot be broadcast together`);
        d = v;
      }
    }
    out.push(d);
  }
  return out;
}

type Mode = { kind: 'same' } | { kind: 'scalar' } | { kind: 'suffix'; mod: number } | { kind: 'general'; strides: number[] };

function modeOf(inShape: Shape, out: Shape): Mode {
  const n = numel(inShape);
  if (n === 1) return { kind: 'scalar' };
  if (n === numel(out)) return { kind: 'same' }; // broadcasting guarantees the same layout then
  const trimmed = [...inShape];
  while (trimmed.length && trimmed[0] === 1) trimmed.shift();
  const tail = out.slice(out.length - trimmed.length);
  if (trimmed.every((d, i) => d === tail[i])) return { kind: 'suffix', mod: n };
  const s = stridesOf(inShape);
  const off = out.length - inShape.length;
  return { kind: 'general', strides: out.map((_, i) => (i < off || inShape[i - off] === 1 ? 0 : s[i - off])) };
}

const MAX_INPUTS = 5;
const kernelCache = new Map<string, string>();
const MAX_RANK = 8;

function mapKernel(expr: string, names: string[], modes: Mode[], vec: boolean, rank: number, inplace: boolean, helpers: string): string {
  const T = vec ? 'vec4f' : 'f32';
  const decls = names.map((nm, k) => {
    const elem = modes[k].kind === 'scalar' || !vec ? 'f32' : 'vec4f';
    return `@group(0) @binding(${k + 1}) var<storage, read> in_${nm}: array<${elem}>;`;
  });
  const generalIndex = (k: number) => {
    const lines = [`var r${k} = i; var o${k} = 0u;`];
    for (let d = rank - 1; d >= 0; d--) {
      lines.push(`{ let s = u.shape[${d >> 2}][${d & 3}]; o${k} += (r${k} % s) * u.strides[${2 * k + (d >> 2)}][${d & 3}]; r${k} = r${k} / s; }`);
    }
    return lines.join(' ');
  };
  const loads = names.map((nm, k) => {
    const m = modes[k];
    switch (m.kind) {
      case 'same': return `let ${nm} = in_${nm}[i];`;
      case 'scalar': return `let ${nm} = ${T}(in_${nm}[0]);`;
      case 'suffix': return `let ${nm} = in_${nm}[i % u.mods[${k}]];`;
      case 'general': return `${generalIndex(k)} let ${nm} = in_${nm}[o${k}];`;
    }
  });
  return /* wgsl */`
alias T = ${T};
struct P { n: u32, p: f32, q: f32, rank: u32, mods: vec4u, shape: array<vec4u, 2>, strides: array<vec4u, ${2 * MAX_INPUTS}> }
@group(0) @binding(0) var<uniform> u: P;
${decls.join('\n')}
${helpers}
@group(0) @binding(${names.length + 1}) var<storage, read_write> out: array<${T}>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.n) { return; }
  let p = u.p; let q = u.q;
  ${inplace ? 'let o = out[i];' : ''}
  ${loads.join('\n  ')}
  out[i] = ${expr};
}`;
}

export interface MapOptions {
  label?: string;
  /** Scalar uniforms available to the expression as `p` and `q`. */
  p?: number;
  q?: number;
  /** Write into this tensor (its current value is `o` in the expression) instead of a new one. */
  out?: Tensor;
  /** WGSL functions the expression calls (module scope). */
  helpers?: string;
}

/**
 * Evaluates a WGSL expression elementwise over broadcast inputs (no autograd). Names in `inputs` are the
 * variables of `expr`; `T` is the element type (f32 or vec4f) for splats such as `T(0.0)`.
 */
export function map(expr: string, inputs: Record<string, Tensor>, opts: MapOptions = {}): Tensor {
  const label = opts.label ?? 'map';
  const names = Object.keys(inputs);
  const ts = names.map((n) => inputs[n]);
  check(ts.length <= MAX_INPUTS, label, `at most ${MAX_INPUTS} inputs`);
  for (const t of ts) check(t.dtype === 'f32', label, `expected f32 inputs, got ${t.dtype} ${fmtShape(t.shape)}`);
  const shape = opts.out ? [...opts.out.shape] : broadcastShapes(label, ...ts.map((t) => t.shape));
  if (opts.out) broadcastShapes(label, shape, ...ts.map((t) => t.shape)).forEach((d, i) => check(d === shape[i], label, `inputs ${ts.map((t) => fmtShape(t.shape)).join(', ')} do not broadcast to the output ${fmtShape(shape)}`));
  check(shape.length <= MAX_RANK, label, `rank ${shape.length} over ${MAX_RANK}`);
  const modes = ts.map((t) => modeOf(t.shape, shape));
  const n = numel(shape);
  const vec = n % 4 === 0 && modes.every((m) => m.kind === 'same' || m.kind === 'scalar' || (m.kind === 'suffix' && m.mod % 4 === 0));
  const out = opts.out ?? Tensor.empty(shape, 'f32', label);
  if (n === 0) return out;
  const count = vec ? n / 4 : n;
  const params = new Params().u(count).f(opts.p ?? 0, opts.q ?? 0).u(shape.length);
  const mods = [0, 0, 0, 0];
  modes.forEach((m, k) => { if (m.kind === 'suffix') { check(k < 4, label, 'at most 4 suffix-broadcast inputs'); mods[k] = vec ? m.mod / 4 : m.mod; } });
  params.u(...mods);
  const padded = (v: number[]) => [...v, ...new Array(MAX_RANK - v.length).fill(1)];
  params.u(...padded(shape));
  for (let k = 0; k < MAX_INPUTS; k++) {
    const m = modes[k];
    params.u(...(m?.kind === 'general' ? [...m.strides, ...new Array(MAX_RANK - m.strides.length).fill(0)] : new Array(MAX_RANK).fill(0)));
  }
  // The same string object for the same kernel: building and hashing the source every call costs more
  // than the dispatch on fast GPUs.
  const key = `${expr}|${names.join(',')}|${modes.map((m) => m.kind).join(',')}|${vec}|${shape.length}|${!!opts.out}|${opts.helpers ?? ''}`;
  let code = kernelCache.get(key);
  if (!code) kernelCache.set(key, (code = mapKernel(expr, names, modes, vec, shape.length, !!opts.out, opts.helpers ?? '')));
  launch(label, code, [...ts, out], grid(count, 64), params);
  return out;
}

// ------------------------------------------------------------------------------------------ definitions
/** A unary op: `f` in terms of x (and scalars p, q); `df` the input gradient in terms of g, x, y = f(x), p, q. */
export interface UnaryDef { f: string; df: string }

export const UNARY = {
  neg: { f: '-x', df: '-g' },
  exp: { f: 'exp(x)', df: 'g * y' },
  log: { f: 'log(x)', df: 'g / x' },
  sqrt: { f: 'sqrt(x)', df: 'g * 0.5 / y' },
  rsqrt: { f: 'inverseSqrt(x)', df: '-0.5 * g * y * y * y' },
  // tanh(x) = 1 - 2/(exp(2x)+1) stays finite for large |x| on every driver (some tanh builtins return NaN).
  tanh: { f: '1.0 - 2.0 / (exp(2.0 * x) + 1.0)', df: 'g * (1.0 - y * y)' },
  sigmoid: { f: '1.0 / (1.0 + exp(-x))', df: 'g * y * (1.0 - y)' },
  abs: { f: 'abs(x)', df: 'g * sign(x)' },
  relu: { f: 'max(x, T(0.0))', df: 'select(T(0.0), g, x > T(0.0))' },
  square: { f: 'x * x', df: '2.0 * g * x' },
  silu: { f: 'x / (1.0 + exp(-x))', df: 'g * (1.0 / (1.0 + exp(-x))) * (1.0 + x * (1.0 - 1.0 / (1.0 + exp(-x))))' },
  // GELU, tanh approximation (DiT's nn.GELU(approximate="tanh")): 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))).
  gelu: {
    f: 'x * (1.0 - 1.0 / (exp(1.5957691216057308 * (x + 0.044715 * x * x * x)) + 1.0))',
    df: 'g * gelu_grad(x)',
  },
  scale: { f: 'x * p', df: 'g * p' },
  addScalar: { f: 'x + p', df: 'g' },
  /** x^p for x > 0 (WGSL pow is undefined for negative bases; use square or mul for integer powers). */
  powScalar: { f: 'pow(x, T(p))', df: 'g * p * pow(x, T(p - 1.0))' },
  clamp: { f: 'clamp(x, T(p), T(q))', df: 'select(T(0.0), g, (x >= T(p)) & (x <= T(q)))' },
} satisfies Record<string, UnaryDef>;
export type UnaryOp = keyof typeof UNARY;

/** WGSL helpers some derivative expressions call, prepended when referenced. */
const HELPERS: Record<string, string> = {
  gelu_grad: /* wgsl */`
fn gelu_grad(x: T) -> T {
  let k = 0.7978845608028654;
  let z = k * (x + 0.044715 * x * x * x);
  let t = 1.0 - 2.0 / (exp(2.0 * z) + 1.0);
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 0.134145 * x * x);
}`,
};

/** The WGSL helper functions an expression calls. */
export function helpersFor(expr: string): string {
  return Object.entries(HELPERS).filter(([k]) => expr.includes(k)).map(([, v]) => v).join('\n');
}

const uses = (expr: string, v: string) => new RegExp(`\\b${v}\\b`).test(expr);

/** `map` with the WGSL helper functions the expression calls. */
function mapWithHelpers(expr: string, inputs: Record<string, Tensor>, opts: MapOptions): Tensor {
  return map(expr, inputs, { ...opts, helpers: helpersFor(expr) });
}

export function unary(op: UnaryOp, x: Tensor, p = 0, q = 0): Tensor {
  const def: UnaryDef = UNARY[op];
  const y = mapWithHelpers(def.f, { x }, { label: op, p, q });
  const needX = uses(def.df, 'x'), needY = uses(def.df, 'y');
  return record(op, y, [x], [...(needX ? [x] : []), ...(needY ? [y] : [])], (g, saved) => {
    const inputs: Record<string, Tensor> = { g };
    let k = 0;
    if (needX) inputs.x = saved[k++];
    if (needY) inputs.y = saved[k++];
    return [mapWithHelpers(def.df, inputs, { label: `${op}.backward`, p, q })];
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

