// Attention, LayerNorm and embedding: what the registry's float64 checks (test/kernels.test.ts) do not cover.
import { expect } from 'chai';
import { flashAttention, selfAttention } from '../kernels/attention.js';
import { adaLNModulate } from '../kernels/layernorm.js';
import { embedding } from '../kernels/embedding.js';
import { randomNormal } from '../kernels/registry.js';
import { sum } from '../kernels/reduce.js';
import { mul } from '../kernels/elementwise.js';
import { backward } from '../engine/autograd.js';
import { device, t, read, expectClose } from './helpers.js';

describe('fused attention', () => {
  before(device);

  it('rejects mismatched operands with the shapes in the message', () => {
    expect(() => flashAttention(t(randomNormal(8, 1), [1, 2, 4]), t(randomNormal(12, 1), [1, 2, 6]), t(randomNormal(12, 1), [1, 2, 6]), 1)).to.throw(/flashAttention: q, k, v must be/);
    expect(() => selfAttention(t(randomNormal(20, 1), [1, 2, 10]), 2, { variant: 'flash1' })).to.throw(/qkv must be \[B, T, 3·D\] with D divisible by 2 heads, got \[1,2,10\]/);
  });
});

describe('adaLN modulate', () => {
  before(device);

  it('names the shapes when shift or scale do not match x', () => {
    expect(() => adaLNModulate(t(randomNormal(24, 1), [2, 3, 4]), t(randomNormal(4, 2), [1, 4]), t(randomNormal(8, 3), [2, 4]))).to.throw(/adaLNModulate: shift must be \[2, 4\] for x \[2,3,4\], got \[1,4\]/);
  });

  it('gives one tensor passed as both shift and scale the sum of both gradients', async () => {
    const x = t(randomNormal(48, 1, 2), [2, 3, 8]), w = t(randomNormal(48, 2), [2, 3, 8]), v = randomNormal(16, 3);
    const s = t(v, [2, 8], true), shift = t(v, [2, 8], true), scale = t(v, [2, 8], true);
    backward(sum(mul(adaLNModulate(x, s, s), w)));
    backward(sum(mul(adaLNModulate(x, shift, scale), w)));
    const [gs, gsh, gsc] = await Promise.all([s, shift, scale].map((u) => read(u.grad!)));
    expectClose(gs, gsh.map((g, i) => g + gsc[i]), 1e-6, 'd/ds');
  });
});

describe('embedding', () => {
  before(device);

  it('rejects float indices', () => {
    expect(() => embedding(t(randomNormal(15, 1), [5, 3]), t([1, 2], [2]))).to.throw(/embedding: indices must be i32/);
  });
});
