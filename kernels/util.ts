// Shared launch helpers for the kernels: grids that respect the 65535-workgroup limit, uniform blocks declared once.
import { gpu } from '../engine/device.js';
import { Tensor } from '../engine/tensor.js';

/** Workgroup counts for `n` invocations of `wg` lanes; shaders rebuild the index with `linearIndex`. */
export function grid(n: number, wg: number): [number, number] {
  const groups = Math.max(1, Math.ceil(n / wg));
  const x = Math.min(groups, 65535);
  return [x, Math.ceil(groups / x)];
}

/** WGSL: the flat invocation index for a `grid()` launch with workgroup size `wg`. */
export const linearIndex = (wg: number) => `(gid.x + gid.y * nwg.x * ${wg}u)`;

/** WGSL builtins every elementwise-style kernel declares. */
export const gridArgs = '@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u';

/** A uniform field's WGSL type: a scalar, a vec4 of u32, an array of them, or a nested block (a struct). */
export type UniformType = 'u32' | 'i32' | 'f32' | 'vec4u' | `array<vec4u, ${number}>` | Uniforms<UniformFields>;
export type UniformFields = Record<string, UniformType>;
/** What `pack` takes: a number per scalar, up to 4·N numbers per vec4u array (zeros after), an object per nested block. */
export type UniformValues<F extends UniformFields> = {
  readonly [K in keyof F]: F[K] extends 'u32' | 'i32' | 'f32' ? number : F[K] extends Uniforms<infer G> ? UniformValues<G> : ArrayLike<number>;
};

const F32 = new Float32Array(1), U32 = new Uint32Array(F32.buffer);

/**
 * A uniform block declared once, by field names and types: `wgsl` is its struct with the binding
 * `@group(0) @binding(0) var<uniform> u: P` that `launch` fills, `pack` its words; both follow one layout,
 * valid in the uniform address space: scalars 4-byte aligned; vec4s, arrays of them and nested blocks
 * (`@align(16) @size(16·k)`) 16-byte aligned and sized.
 *
 *     const Softplus = uniforms({ n: 'u32', beta: 'f32' });   // Softplus.wgsl: struct P { n: u32, beta: f32 } + binding
 *     launch('softplus', code, [x, y], grid(n, 64), Softplus.pack({ n, beta }));
 */
export class Uniforms<F extends UniformFields> {
  /** The struct declarations (nested blocks first). */
  readonly structs: string;
  /** The structs and the block's binding, for a kernel's source. */
  readonly wgsl: string;
  /** Size in 32-bit words, a multiple of 4 (16 bytes). */
  readonly words: number;
  /** Per field: its word offset, and its kind (u32/i32 bits, f32, n words of vec4u, or a nested block). */
  private readonly layout: { key: string; at: number; kind: 'u' | 'f' | 'v' | Uniforms<UniformFields>; n: number }[] = [];

  constructor(readonly fields: F, readonly name = 'P') {
    let at = 0;
    for (const [key, type] of Object.entries(fields)) {
      const scalar = type === 'u32' || type === 'i32' || type === 'f32';
      const n = scalar ? 1 : typeof type !== 'string' ? type.words : type === 'vec4u' ? 4 : 4 * Number(/(\d+)>$/.exec(type)![1]);
      if (!scalar) at = Math.ceil(at / 4) * 4;
      this.layout.push({ key, at, kind: typeof type !== 'string' ? type : type === 'f32' ? 'f' : scalar ? 'u' : 'v', n });
      at += n;
    }
    this.words = Math.max(4, Math.ceil(at / 4) * 4);
    const nested = [...new Set(Object.values(fields).flatMap((t) => (typeof t === 'string' ? [] : [t.structs])))];
    // Nested blocks get their place explicitly: WGSL aligns and sizes a struct member by its own members (4
    // bytes for scalars); only the uniform address space's older rule (no uniform_buffer_standard_layout) asks 16.
    const member = ([k, t]: [string, UniformType]) => (typeof t === 'string' ? `${k}: ${t}` : `@align(16) @size(${4 * t.words}) ${k}: ${t.name}`);
    this.structs = [...nested, `struct ${name} { ${Object.entries(fields).map(member).join(', ')} }`].join('\n');
    this.wgsl = `${this.structs}\n@group(0) @binding(0) var<uniform> u: ${name};`;
  }

  /** The block's words for `values` (every field named). */
  pack(values: UniformValues<F>): Uint32Array {
    const out = new Uint32Array(this.words);
    this.write(values as Record<string, unknown>, out, 0);
    return out;
  }

  private write(values: Record<string, unknown>, out: Uint32Array, base: number): void {
    for (const { key, at, kind, n } of this.layout) {
      const v = values[key];
      const bad = kind === 'u' || kind === 'f' ? typeof v !== 'number' : kind === 'v' ? (v as ArrayLike<number>)?.length === undefined || (v as ArrayLike<number>).length > n : !v || typeof v !== 'object';
      if (bad) throw new Error(`uniform ${this.name}.${key} needs ${kind === 'u' || kind === 'f' ? 'a number' : kind === 'v' ? `at most ${n} numbers` : 'an object'}, got ${JSON.stringify(v)}`);
      if (kind === 'u') out[base + at] = (v as number) >>> 0;
      else if (kind === 'f') { F32[0] = v as number; out[base + at] = U32[0]; }
      else if (kind === 'v') { const a = v as ArrayLike<number>; for (let i = 0; i < a.length; i++) out[base + at + i] = a[i] >>> 0; }
      else kind.write(v as Record<string, unknown>, out, base + at);
    }
  }
}

/** Declares a uniform block (see `Uniforms`); its struct is named `name`. */
export const uniforms = <const F extends UniformFields>(fields: F, name = 'P'): Uniforms<F> => new Uniforms(fields, name);

/** Records a dispatch whose bindings are tensors (uniform block first, if any: `Uniforms.pack`'s words). */
export function launch(label: string, code: string, tensors: Tensor[], workgroups: [number, number?, number?], params?: Uint32Array, detail?: string): void {
  gpu().dispatch({ label, code, buffers: tensors.map((t) => t.binding), params, workgroups, detail });
}

/** Contiguous row-major strides. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]; }
  return s;
}
