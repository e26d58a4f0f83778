// The elementwise family's edge cases and errors (its float64 checks are in test/kernels.test.ts).
import { expect } from 'chai';
import { unary, binary, map, full, expand } from '../kernels/elementwise.js';
import { Tensor } from '../engine/tensor.js';
import { randomNormal } from '../kernels/registry.js';
import { device, expectClose, read, t } from './helpers.js';

describe('elementwise kernels', () => {
  before(device);

  it('tanh and gelu stay finite for large |x|', async () => {
    const x = Float32Array.from([-100, -30, 30, 100]);
    expect(Array.from(await read(unary('tanh', t(x, [4]))))).to.deep.equal([-1, -1, 1, 1]);
    expectClose(await read(unary('gelu', t(x, [4]))), [0, 0, 30, 100], 1e-7, 'gelu');
  });

  it('rejects shapes that do not broadcast, naming the op and shapes', () => {
    expect(() => binary('add', t(randomNormal(6, 1), [2, 3]), t(randomNormal(4, 1), [4]))).to.throw(/add: shapes \[2,3\] and \[4\] cannot be broadcast/);
  });

  it('rejects a disposed tensor with a clear error', () => {
    const a = t(randomNormal(4, 1), [4]);
    a.dispose();
    expect(() => unary('exp', a)).to.throw(/was used after dispose\(\)/);
  });

  it('rejects integer tensors in float ops', () => {
    expect(() => unary('exp', Tensor.from(Int32Array.from([1, 2, 3]), [3]))).to.throw(/expected f32 inputs, got i32/);
  });

  it('map evaluates in place and full/expand fill', async () => {
    const x = full([3, 5], 2.5);
    map('o * p + T(1.0)', {}, { out: x, p: 2 });
    expect(Array.from(await read(x))).to.deep.equal(new Array(15).fill(6));
    const e = expand(t([1, 2, 3], [3, 1]), [3, 2]);
    expect(Array.from(await read(e))).to.deep.equal([1, 1, 2, 2, 3, 3]);
  });
});
