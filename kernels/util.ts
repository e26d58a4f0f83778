// Shared launch helpers for the kernels: grids that respect the 65535-workgroup limit, uniform packing.
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

/** Packs numbers into a uniform block: integers as u32 (or i32), others via `f()` as f32 bits. */
export class Params {
  private readonly words: number[] = [];
  private readonly f32 = new Float32Array(1);
  private readonly u32 = new Uint32Array(this.f32.buffer);
  u(...v: number[]): this { for (const x of v) this.words.push(x >>> 0); return this; }
  f(...v: number[]): this { for (const x of v) { this.f32[0] = x; this.words.push(this.u32[0]); } return this; }
  /** Pads to a multiple of 4 words (16 bytes) so vec4 arrays start aligned. */
  align4(): this { while (this.words.length % 4) this.words.push(0); return this; }
  get length(): number { return this.words.length; }
  build(): Uint32Array { return new Uint32Array(this.words); }
}

/** Records a dispatch whose bindings are tensors (uniform block first, if any). */
export function launch(label: string, code: string, tensors: Tensor[], workgroups: [number, number?, number?], params?: Params, detail?: string): void {
  gpu().dispatch({ label, code, buffers: tensors.map((t) => t.binding), params: params?.build(), workgroups, detail });
}

/** Contiguous row-major strides. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]; }
  return s;
}
