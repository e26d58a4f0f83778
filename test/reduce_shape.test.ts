// Reductions and shape ops: shapes, views and errors (their float64 checks are in test/kernels.test.ts).
import { expect } from 'chai';
import { sum } from '../kernels/reduce.js';
import { split, chunk, reshape } from '../kernels/shape.js';
import { randomNormal } from '../kernels/registry.js';
import { device, t } from './helpers.js';

describe('reductions', () => {
  before(device);

  it('keepDims keeps the reduced axes as size 1, negative axes count from the end', () => {
    expect(sum(t(randomNormal(120, 1), [2, 3, 4, 5]), [1, 2], true).shape).to.deep.equal([2, 1, 1, 5]);
    expect(sum(t(randomNormal(120, 1), [2, 3, 4, 5]), -1).shape).to.deep.equal([2, 3, 4]);
    expect(sum(t(randomNormal(6, 1), [2, 3])).shape).to.deep.equal([]);
  });
});

describe('shape ops', () => {
  before(device);

  it('split and chunk cut an axis into the given pieces', () => {
    const x = t(randomNormal(60, 1), [3, 4, 5]);
    expect(split(x, [2, 3], 2).map((p) => p.shape)).to.deep.equal([[3, 4, 2], [3, 4, 3]]);
    expect(chunk(x, 2, 1).map((p) => p.shape)).to.deep.equal([[3, 2, 5], [3, 2, 5]]);
    expect(() => split(x, [2, 2], 2)).to.throw(/split: sizes \[2,2\] do not add up to 5/);
  });

  it('reshape is a view (no copy) with -1 inference, and rejects sizes that differ', () => {
    const x = t(randomNormal(12, 1), [3, 4]);
    const y = reshape(x, [2, -1]);
    expect(y.shape).to.deep.equal([2, 6]);
    expect(y.buffer).to.equal(x.buffer);
    expect(() => reshape(x, [5, 2])).to.throw(/reshape: cannot reshape \[3,4\] \(12 elements\) to \[5,2\]/);
  });
});
