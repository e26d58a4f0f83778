// Attention, LayerNorm and embedding: what the registry's float64 checks (test/kernels.test.ts) do not cover.
import { expect } from 'chai';
import { flashAttention, selfAttention } from '../kernels/attention.js';
import { adaLNModulate } from '../kernels/layernorm.js';
import { embedding } from '../kernels/embedding.js';
import { randomNormal } from '../kernels/registry.js';
import { device, t } from './helpers.js';

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
});

describe('embedding', () => {
  before(device);

  it('rejects float indices', () => {
    expect(() => embedding(t(randomNormal(15, 1), [5, 3]), t([1, 2], [2]))).to.throw(/embedding: indices must be i32/);
  });
});
