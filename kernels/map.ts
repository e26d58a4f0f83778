// The one elementwise kernel generator: any WGSL expression over broadcast f32 inputs becomes a shader
// (vec4 when the layout allows). Every elementwise op, its backward and in-place update is an instance; the
// WGSL functions that several kernels share (GELU-tanh and its normal CDF) are defined here once.
import { Tensor, check, fmtShape, numel, type Shape } from '../engine/tensor.js';
import { uniforms, grid, gridArgs, launch, linearIndex, stridesOf } from './util.js';

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

/**
 * n lanes; the expression's scalars p and q; per input k < 4 the period of its suffix broadcast (mods[k]); the
 * output shape and, per input, the strides of its general broadcast (MAX_RANK words each).
 */
const MapUniforms = uniforms({ n: 'u32', p: 'f32', q: 'f32', mods: 'vec4u', shape: `array<vec4u, ${MAX_RANK / 4}>`, strides: `array<vec4u, ${(MAX_INPUTS * MAX_RANK) / 4}>` });

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
${MapUniforms.wgsl}
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
  /** WGSL functions the expression calls (module scope); the shared ones below are added when called. */
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
  const mods = [0, 0, 0, 0], strides = new Array<number>(MAX_INPUTS * MAX_RANK).fill(0);
  modes.forEach((m, k) => {
    if (m.kind === 'suffix') { check(k < 4, label, 'at most 4 suffix-broadcast inputs'); mods[k] = vec ? m.mod / 4 : m.mod; }
    if (m.kind === 'general') m.strides.forEach((st, d) => { strides[k * MAX_RANK + d] = st; });
  });
  const params = MapUniforms.pack({ n: count, p: opts.p ?? 0, q: opts.q ?? 0, mods, shape: [...shape, ...new Array(MAX_RANK - shape.length).fill(1)], strides });
  // The same string object for the same kernel: building and hashing the source every call costs more
  // than the dispatch on fast GPUs.
  const key = `${expr}|${names.join(',')}|${modes.map((m) => m.kind).join(',')}|${vec}|${shape.length}|${!!opts.out}|${opts.helpers ?? ''}`;
  let code = kernelCache.get(key);
  if (!code) kernelCache.set(key, (code = mapKernel(expr, names, modes, vec, shape.length, !!opts.out, `${opts.helpers ?? ''}\n${helpersFor(`${opts.helpers ?? ''} ${expr}`)}`)));
  launch(label, code, [...ts, out], grid(count, 64), params);
  return out;
}

// ------------------------------------------------------------------------------------------ shared WGSL
/**
 * WGSL functions over the element type T (f32 or vec4f), each with the helpers it calls: activations and
 * their derivatives, the one definition every kernel that fuses them uses. GELU-tanh
 * (DiT's nn.GELU(approximate="tanh")) is x·Φ̃(x) with Φ̃ the tanh approximation of the normal CDF that the
 * diffusion decoder likelihood also uses; tanh as 1 − 2/(exp(2x) + 1) stays finite for large |x| on every driver.
 */
const WGSL_FUNCTIONS: Record<string, { deps: string[]; code: string }> = {
  tanh_: { deps: [], code: 'fn tanh_(x: T) -> T { return 1.0 - 2.0 / (exp(2.0 * x) + 1.0); }' },
  approx_std_normal_cdf: { deps: ['tanh_'], code: 'fn approx_std_normal_cdf(x: T) -> T { return 0.5 * (1.0 + tanh_(0.7978845608028654 * (x + 0.044715 * x * x * x))); }' },
  approx_std_normal_cdf_grad: {
    deps: ['tanh_'],
    code: /* wgsl */`fn approx_std_normal_cdf_grad(x: T) -> T {
  let t = tanh_(0.7978845608028654 * (x + 0.044715 * x * x * x));
  return 0.5 * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 0.134145 * x * x);
}`,
  },
  gelu_tanh: { deps: ['approx_std_normal_cdf'], code: 'fn gelu_tanh(x: T) -> T { return x * approx_std_normal_cdf(x); }' },
  gelu_tanh_grad: {
    deps: ['approx_std_normal_cdf', 'approx_std_normal_cdf_grad'],
    code: 'fn gelu_tanh_grad(x: T) -> T { return approx_std_normal_cdf(x) + x * approx_std_normal_cdf_grad(x); }',
  },
  sigmoid_: { deps: [], code: 'fn sigmoid_(x: T) -> T { return 1.0 / (1.0 + exp(-x)); }' },
  silu_: { deps: ['sigmoid_'], code: 'fn silu_(x: T) -> T { return x * sigmoid_(x); }' },
  silu_grad: { deps: ['sigmoid_'], code: 'fn silu_grad(x: T) -> T { let s = sigmoid_(x); return s * (1.0 + x * (1.0 - s)); }' },
};

/** The shared WGSL functions `code` calls (with their dependencies, each once, callees first). */
export function helpersFor(code: string): string {
  const out: string[] = [];
  const add = (name: string) => {
    const f = WGSL_FUNCTIONS[name];
    if (out.includes(f.code)) return;
    f.deps.forEach(add);
    out.push(f.code);
  };
  for (const name of Object.keys(WGSL_FUNCTIONS)) if (new RegExp(`\\b${name}\\(`).test(code)) add(name);
  return out.join('\n');
}
