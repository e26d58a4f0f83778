import { expect } from 'chai';
import { sum, mean, max, softmax, logSoftmax, mse } from '../kernels/reduce.js';
import { permute, slice, concat, padAxis, pad2d, split, chunk, patchify, unpatchify, reshape, transpose } from '../kernels/shape.js';
import { device, randArray, expectClose, gradCheck, read, t } from './helpers.js';
import { softmaxRows64 } from './ref.js';

/** Host reduction over `axes` of a row-major array. */
function reduceHost(x: Float32Array, shape: number[], axes: number[], f: (acc: number, v: number) => number, init: number): number[] {
  const outShape = shape.filter((_, i) => !axes.includes(i));
  const n = outShape.reduce((a, b) => a * b, 1);
  const out = new Array(n).fill(init);
  const total = x.length;
  for (let i = 0; i < total; i++) {
    let r = i; const c: number[] = [];
    for (let d = shape.length - 1; d >= 0; d--) { c.unshift(r % shape[d]); r = Math.floor(r / shape[d]); }
    let o = 0;
    shape.forEach((d, k) => { if (!axes.includes(k)) o = o * d + c[k]; });
    out[o] = f(out[o], x[i]);
  }
  return out;
}

describe('reductions', () => {
  before(device);

  for (const [shape, axes] of [[[7], [0]], [[3, 17], [1]], [[3, 17], [0]], [[4, 5, 6], [0, 2]], [[2, 3, 4, 5], [1, 2]], [[100000], [0]], [[3, 5000], [1]]] as [number[], number[]][]) {
    it(`sum, mean and max over axes ${JSON.stringify(axes)} of ${JSON.stringify(shape)} match the host`, async () => {
      const n = shape.reduce((a, b) => a * b, 1);
      const x = randArray(n, n);
      const R = axes.reduce((a, k) => a * shape[k], 1);
      const s = reduceHost(x, shape, axes, (a, v) => a + v, 0);
      expectClose(await read(sum(t(x, shape), axes)), s, 1e-5, 'sum');
      expectClose(await read(mean(t(x, shape), axes)), s.map((v) => v / R), 1e-5, 'mean');
      expectClose(await read(max(t(x, shape), axes)), reduceHost(x, shape, axes, Math.max, -Infinity), 0, 'max');
      const kd = sum(t(x, shape), axes, true);
      expect(kd.shape).to.deep.equal(shape.map((d, i) => (axes.includes(i) ? 1 : d)));
    });
  }

  it('reduction gradients match finite differences', async () => {
    const x = randArray(24, 3);
    await gradCheck(([a]) => sum(a, [0, 2]), [{ data: x, shape: [2, 3, 4] }]);
    await gradCheck(([a]) => mean(a, 1, true), [{ data: x, shape: [2, 3, 4] }]);
    await gradCheck(([a]) => max(a, 2), [{ data: x, shape: [2, 3, 4] }]);
  });

  it('softmax and log-softmax over the last axis match float64, with gradients', async () => {
    const x = randArray(5 * 33, 4, 3);
    const ref = softmaxRows64(x, 33);
    expectClose(await read(softmax(t(x, [5, 33]))), ref, 1e-6, 'softmax');
    expectClose(await read(logSoftmax(t(x, [5, 33]))), Array.from(ref, Math.log), 1e-6, 'logSoftmax');
    await gradCheck(([a]) => softmax(a), [{ data: randArray(12, 5), shape: [3, 4] }]);
    await gradCheck(([a]) => logSoftmax(a), [{ data: randArray(12, 6), shape: [3, 4] }]);
  });

  it('mse is the mean squared difference, with gradients for both inputs', async () => {
    const a = randArray(50, 1), b = randArray(50, 2);
    const ref = a.reduce((acc, v, i) => acc + (v - b[i]) ** 2, 0) / 50;
    expectClose([await mse(t(a, [5, 10]), t(b, [5, 10])).item()], [ref], 1e-6, 'mse');
    await gradCheck(([x, y]) => mse(x, y), [{ data: randArray(6, 3), shape: [2, 3] }, { data: randArray(6, 4), shape: [2, 3] }]);
  });
});

describe('shape ops', () => {
  before(device);

  it('permute moves axes like numpy.transpose, and its gradient permutes back', async () => {
    const x = randArray(2 * 3 * 4 * 5, 1);
    const y = await read(permute(t(x, [2, 3, 4, 5]), [2, 0, 3, 1]));
    const ref: number[] = [];
    for (let c = 0; c < 4; c++) for (let a = 0; a < 2; a++) for (let d = 0; d < 5; d++) for (let b = 0; b < 3; b++) ref.push(x[((a * 3 + b) * 4 + c) * 5 + d]);
    expectClose(y, ref, 0, 'permute');
    await gradCheck(([a]) => permute(a, [1, 2, 0]), [{ data: randArray(24, 2), shape: [2, 3, 4] }]);
    await gradCheck(([a]) => transpose(a), [{ data: randArray(24, 2), shape: [2, 3, 4] }]);
  });

  it('slice, split, chunk, concat and pad copy the right elements', async () => {
    const x = randArray(3 * 4 * 5, 1);
    const s = await read(slice(t(x, [3, 4, 5]), 1, 1, 3));
    const ref: number[] = [];
    for (let a = 0; a < 3; a++) for (let b = 1; b < 3; b++) for (let c = 0; c < 5; c++) ref.push(x[(a * 4 + b) * 5 + c]);
    expectClose(s, ref, 0, 'slice');
    const parts = split(t(x, [3, 4, 5]), [2, 3], 2);
    expect(parts.map((p) => p.shape)).to.deep.equal([[3, 4, 2], [3, 4, 3]]);
    const back = await read(concat(parts, 2));
    expectClose(back, x, 0, 'concat(split)');
    expect(chunk(t(x, [3, 4, 5]), 2, 1).map((p) => p.shape)).to.deep.equal([[3, 2, 5], [3, 2, 5]]);
    const p = await read(padAxis(t([1, 2, 3], [1, 3]), 1, 2, 1));
    expect(Array.from(p)).to.deep.equal([0, 0, 1, 2, 3, 0]);
    const p2 = await read(pad2d(t([1, 2, 3, 4], [1, 1, 2, 2]), [0, 1, 0, 1]));
    expect(Array.from(p2)).to.deep.equal([1, 2, 0, 3, 4, 0, 0, 0, 0]);
    await gradCheck(([a, b]) => concat([a, b], 1), [{ data: randArray(6, 1), shape: [2, 3] }, { data: randArray(4, 2), shape: [2, 2] }]);
    await gradCheck(([a]) => slice(a, 0, 1, 3), [{ data: randArray(12, 3), shape: [4, 3] }]);
    await gradCheck(([a]) => pad2d(a, [0, 1, 0, 1]), [{ data: randArray(8, 4), shape: [1, 2, 2, 2] }]);
  });

  it('patchify orders each patch (channel, i, j) and unpatchify reads (i, j, channel), as DiT', async () => {
    const B = 2, C = 3, H = 4, p = 2;
    const x = randArray(B * C * H * H, 1);
    const y = await read(patchify(t(x, [B, C, H, H]), p));
    const g = H / p;
    const ref: number[] = [];
    for (let b = 0; b < B; b++) for (let r = 0; r < g; r++) for (let c = 0; c < g; c++) for (let ch = 0; ch < C; ch++) for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) ref.push(x[((b * C + ch) * H + r * p + i) * H + c * p + j]);
    expectClose(y, ref, 0, 'patchify');
    // unpatchify: token m = r·g + c, feature (i·p + j)·C + ch → out[b, ch, r·p + i, c·p + j]
    const f = randArray(B * g * g * p * p * C, 2);
    const u = await read(unpatchify(t(f, [B, g * g, p * p * C]), p, C));
    const uref = new Float64Array(B * C * H * H);
    for (let b = 0; b < B; b++) for (let r = 0; r < g; r++) for (let c = 0; c < g; c++) for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) for (let ch = 0; ch < C; ch++) uref[((b * C + ch) * H + r * p + i) * H + c * p + j] = f[((b * g * g + r * g + c) * p * p + i * p + j) * C + ch];
    expectClose(u, uref, 0, 'unpatchify');
    await gradCheck(([a]) => patchify(a, 2), [{ data: randArray(32, 3), shape: [1, 2, 4, 4] }]);
  });

  it('reshape is a view (no copy) with -1 inference, and rejects sizes that differ', async () => {
    const x = t(randArray(12, 1), [3, 4]);
    const y = reshape(x, [2, -1]);
    expect(y.shape).to.deep.equal([2, 6]);
    expect(y.buffer).to.equal(x.buffer);
    expect(() => reshape(x, [5, 2])).to.throw(/reshape: cannot reshape \[3,4\] \(12 elements\) to \[5,2\]/);
  });
});
