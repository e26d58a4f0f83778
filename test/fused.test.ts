import { expect } from 'chai';
import { flashAttention, flashAttentionPacked, attentionUnfused, selfAttention } from '../kernels/attention.js';
import { adaLNModulate, layerNorm, gatedResidual } from '../kernels/layernorm.js';
import { embedding } from '../kernels/embedding.js';
import { Tensor } from '../engine/tensor.js';
import { backward } from '../engine/autograd.js';
import { mul } from '../kernels/elementwise.js';
import { sum } from '../kernels/reduce.js';
import { device, randArray, expectClose, gradCheck, read, t } from './helpers.js';
import { attention64, layerNorm64 } from './ref.js';

describe('fused attention', () => {
  before(device);

  for (const [B, Tq, Tk, H, dh] of [[2, 1, 1, 1, 4], [1, 17, 17, 2, 32], [2, 13, 9, 3, 16], [1, 33, 33, 1, 64], [1, 20, 20, 2, 72], [1, 9, 12, 1, 128], [1, 150, 41, 2, 16]]) {
    it(`forward matches float64 and backward matches the unfused path: B${B} Tq${Tq} Tk${Tk} H${H} dh${dh}`, async () => {
      const D = H * dh;
      const q = randArray(B * Tq * D, 1), k = randArray(B * Tk * D, 2), v = randArray(B * Tk * D, 3), w = randArray(B * Tq * D, 4);
      const ref = attention64(q, k, v, B, Tq, Tk, H, dh);
      const grads: Float32Array[][] = [];
      for (const f of [flashAttention, attentionUnfused]) {
        const [Q, K, V] = [t(q, [B, Tq, D], true), t(k, [B, Tk, D], true), t(v, [B, Tk, D], true)];
        const o = f(Q, K, V, H);
        expectClose(await read(o), ref, 2e-6, f.name);
        backward(sum(mul(o, t(w, [B, Tq, D]))));
        grads.push([await read(Q.grad!), await read(K.grad!), await read(V.grad!)]);
      }
      ['dq', 'dk', 'dv'].forEach((n, i) => expectClose(grads[0][i], grads[1][i], 1e-5, n));
    });
  }

  it('reads packed qkv in place (the DiT layout) and its gradient matches finite differences', async () => {
    const B = 2, T = 6, H = 2, dh = 8, D = H * dh;
    const qkv = randArray(B * T * 3 * D, 5);
    const q = new Float32Array(B * T * D), k = new Float32Array(B * T * D), v = new Float32Array(B * T * D);
    for (let r = 0; r < B * T; r++) for (let c = 0; c < D; c++) { q[r * D + c] = qkv[r * 3 * D + c]; k[r * D + c] = qkv[r * 3 * D + D + c]; v[r * D + c] = qkv[r * 3 * D + 2 * D + c]; }
    expectClose(await read(flashAttentionPacked(t(qkv, [B, T, 3 * D]), H)), attention64(q, k, v, B, T, T, H, dh), 2e-6, 'packed');
    expectClose(await read(selfAttention(t(qkv, [B, T, 3 * D]), H, { fused: false })), attention64(q, k, v, B, T, T, H, dh), 2e-6, 'unfused packed');
    await gradCheck(([x]) => flashAttentionPacked(x, H), [{ data: randArray(B * T * 3 * D, 6), shape: [B, T, 3 * D] }], { samples: 8 });
  });

  it('accepts f16 q, k, v with f32 accumulation where the adapter has shader-f16', async function () {
    const g = await device();
    if (!g.hasF16) this.skip();
    const { cast } = await import('../kernels/random.js');
    const B = 2, T = 19, H = 2, dh = 32, D = H * dh;
    const [q, k, v] = [1, 2, 3].map((s) => cast(t(randArray(B * T * D, s), [B, T, D]), 'f16'));
    const [qh, kh, vh] = [await read(q), await read(k), await read(v)]; // the rounded f16 values
    expectClose(await read(flashAttention(q, k, v, H)), attention64(qh, kh, vh, B, T, T, H, dh), 2e-6, 'f16 attention');
  });

  it('rejects mismatched operands with the shapes in the message', () => {
    expect(() => flashAttention(t(randArray(8, 1), [1, 2, 4]), t(randArray(12, 1), [1, 2, 6]), t(randArray(12, 1), [1, 2, 6]), 1)).to.throw(/flashAttention: q, k, v must be/);
  });
});

describe('layernorm, adaLN modulate and gated residual', () => {
  before(device);

  for (const [D, T] of [[4, 5], [72, 5], [1152, 5], [2048, 5], [384, 8], [128, 6], [1152, 12]]) {
    it(`adaLNModulate = LN(x)·(1 + scale[b]) + shift[b] (D=${D}, T=${T}) matches float64`, async () => {
      const B = 3;
      const x = randArray(B * T * D, 1, 2), sh = randArray(B * D, 2), sc = randArray(B * D, 3);
      const n = layerNorm64(x, D, 1e-6);
      const ref = Array.from(n, (v, i) => { const b = Math.floor(i / (T * D)), d = i % D; return v * (1 + sc[b * D + d]) + sh[b * D + d]; });
      expectClose(await read(adaLNModulate(t(x, [B, T, D]), t(sh, [B, D]), t(sc, [B, D]))), ref, 3e-6, 'modulate');
    });
  }

  it('adaLNModulate gradients (x, shift, scale) match finite differences', async () => {
    await gradCheck(([x, s, c]) => adaLNModulate(x, s, c), [{ data: randArray(2 * 3 * 8, 1), shape: [2, 3, 8] }, { data: randArray(16, 2), shape: [2, 8] }, { data: randArray(16, 3), shape: [2, 8] }], { samples: 8 });
    // and through the rows-across-a-subgroup forward (T % 4 == 0, D a multiple of 4·subgroup size)
    await gradCheck(([x, s, c]) => adaLNModulate(x, s, c), [{ data: randArray(2 * 4 * 64, 4), shape: [2, 4, 64] }, { data: randArray(128, 5), shape: [2, 64] }, { data: randArray(128, 6), shape: [2, 64] }], { samples: 8 });
  });

  it('plain LayerNorm with and without affine, forward and backward', async () => {
    const D = 12, rows = 7;
    const x = randArray(rows * D, 4), w = randArray(D, 5), b = randArray(D, 6);
    const n = layerNorm64(x, D, 1e-5);
    expectClose(await read(layerNorm(t(x, [rows, D]))), n, 3e-6, 'no affine');
    expectClose(await read(layerNorm(t(x, [rows, D]), t(w, [D]), t(b, [D]))), Array.from(n, (v, i) => v * w[i % D] + b[i % D]), 3e-6, 'affine');
    await gradCheck(([a, ww, bb]) => layerNorm(a, ww, bb), [{ data: randArray(3 * 8, 7), shape: [3, 8] }, { data: randArray(8, 8), shape: [8] }, { data: randArray(8, 9), shape: [8] }]);
  });

  it('gatedResidual = x + gate[b]·f, forward and backward', async () => {
    const B = 2, T = 3, D = 8;
    const x = randArray(B * T * D, 1), g = randArray(B * D, 2), f = randArray(B * T * D, 3);
    const ref = Array.from(x, (v, i) => v + g[Math.floor(i / (T * D)) * D + (i % D)] * f[i]);
    expectClose(await read(gatedResidual(t(x, [B, T, D]), t(g, [B, D]), t(f, [B, T, D]))), ref, 1e-6, 'gated');
    await gradCheck(([a, b, c]) => gatedResidual(a, b, c), [{ data: x, shape: [B, T, D] }, { data: g, shape: [B, D] }, { data: f, shape: [B, T, D] }], { samples: 8 });
  });
});

describe('embedding', () => {
  before(device);

  it('gathers rows and scatter-adds gradients, repeated indices included', async () => {
    const rows = 5, D = 3;
    const table = randArray(rows * D, 1);
    const idx = Int32Array.from([4, 0, 4, 2]);
    const y = await read(embedding(t(table, [rows, D]), Tensor.from(idx, [4])));
    expectClose(y, Array.from(idx).flatMap((r) => Array.from(table.subarray(r * D, r * D + D))), 0, 'gather');
    await gradCheck(([w]) => embedding(w, Tensor.from(idx, [2, 2])), [{ data: table, shape: [rows, D] }], { samples: 10 });
    expect(() => embedding(t(table, [rows, D]), t([1, 2], [2]))).to.throw(/embedding: indices must be i32/);
  });
});
