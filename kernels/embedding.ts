// Embedding gather out[i] = table[idx[i]] and its scatter-add backward, written as a gather over table rows
// (each lane sums the gradient rows whose index equals its row), so no float atomics are needed.
import { Tensor, record, check, fmtShape } from '../engine/tensor.js';
import { uniforms, grid, gridArgs, launch, linearIndex } from './util.js';
import { normal, type Family } from './reference.js';

/** n indices into a table of rows × D. */
const EmbeddingUniforms = uniforms({ n: 'u32', D: 'u32', rows: 'u32' });

const GATHER = /* wgsl */`
${EmbeddingUniforms.wgsl}
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read> I: array<i32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.n * u.D) { return; }
  let r = u32(clamp(I[i / u.D], 0, i32(u.rows) - 1));
  Y[i] = W[r * u.D + i % u.D];
}`;

const SCATTER = /* wgsl */`
${EmbeddingUniforms.wgsl}
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read> I: array<i32>;
@group(0) @binding(3) var<storage, read_write> DW: array<f32>;
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let j = ${linearIndex(64)};
  if (j >= u.rows * u.D) { return; }
  let r = i32(j / u.D);
  let d = j % u.D;
  var s = 0.0;
  for (var i = 0u; i < u.n; i++) {
    if (I[i] == r) { s += G[i * u.D + d]; }
  }
  DW[j] = s;
}`;

/** Rows of `table` [rows, D] at integer `indices` (any shape) → [...indices.shape, D]. */
export function embedding(table: Tensor, indices: Tensor): Tensor {
  const op = 'embedding';
  check(table.ndim === 2 && table.dtype === 'f32', op, `table must be f32 [rows, D], got ${table.dtype} ${fmtShape(table.shape)}`);
  check(indices.dtype === 'i32', op, `indices must be i32, got ${indices.dtype} ${fmtShape(indices.shape)}`);
  const [rows, D] = table.shape;
  const n = indices.size;
  const y = Tensor.empty([...indices.shape, D], 'f32', op);
  const p = EmbeddingUniforms.pack({ n, D, rows });
  launch(op, GATHER, [table, indices, y], grid(n * D, 64), p);
  return record(op, y, [table], [indices], (g, [idx]) => {
    const dw = Tensor.empty(table.shape, 'f32', `${op}.backward`);
    launch(`${op}.backward`, SCATTER, [g, idx, dw], grid(rows * D, 64), p);
    return [dw];
  });
}

// ------------------------------------------------------------------------------------------ the family (kernels/registry.ts)
interface EmbeddingProblem { rows: number; D: number; indices: number[]; shape: number[] }

export const embeddingFamily: Family<EmbeddingProblem> = {
  name: 'embedding',
  file: 'kernels/embedding.ts',
  variants: { gather: 'rows of a table at integer indices; backward scatter-adds as a gather (no atomics)' },
  unsupported: () => null,
  problems: () => [{ rows: 5, D: 3, indices: [4, 0, 4, 2], shape: [2, 2] }, { rows: 11, D: 7, indices: [10, 3, 3, 3, 0, 9, 10], shape: [7] }],
  describe: (p) => `table [${p.rows},${p.D}] at ${JSON.stringify(p.indices)}`,
  inputs: (p, seed) => [normal([p.rows, p.D], seed), { shape: p.shape, data: Int32Array.from(p.indices) }],
  reference: (p, [w, idx]) => [Float64Array.from({ length: p.indices.length * p.D }, (_, i) => w[idx[Math.floor(i / p.D)] * p.D + (i % p.D)])],
  run: (_p, [w, idx]) => [embedding(w, idx)],
  tolerance: () => 0,
};
