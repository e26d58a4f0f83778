import { expect } from 'chai';
import { matmul, linear } from '../kernels/matmul.js';
import { autotune } from '../kernels/autotune.js';
import { candidates, tuningTable, type MatmulProblem } from '../kernels/tuning.js';
import { Tensor } from '../engine/tensor.js';
import { cast } from '../kernels/random.js';
import { device, randArray, expectClose, gradCheck, read, t } from './helpers.js';
import { matmul64, gelu64, silu64 } from './ref.js';

const VARIANTS = ['rb4x8', 'rb2x12', 'rb4x4', 'rb1x16', 'rb4x8g', 'rb4x16g', 'rb2x24g', 'rb4x8s', 'rb4x8gs', 'tiled', 'tiled128', 'splitk4'];

describe('matmul kernels', () => {
  before(device);

  for (const [M, N, K] of [[1, 1, 1], [3, 17, 5], [17, 3, 129], [72, 129, 17], [129, 72, 3], [64, 64, 64]]) {
    it(`every variant and transpose combination matches float64 for ${M}×${K}·${K}×${N}`, async () => {
      const a = randArray(M * K, M + K), b = randArray(K * N, N + 7);
      for (const transA of [false, true]) for (const transB of [false, true]) {
        const ref = matmul64(a, b, M, N, K, transA, transB);
        const A = t(a, transA ? [K, M] : [M, K]), B = t(b, transB ? [N, K] : [K, N]);
        for (const v of VARIANTS) {
          const got = await read(matmul(A, B, { transA, transB, variant: v }));
          expectClose(got, ref, 2e-6, `${v} tA=${transA} tB=${transB}`);
        }
      }
    });
  }

  it('fuses bias, activation, alpha and residual in the epilogue (every variant)', async () => {
    const M = 19, N = 36, K = 23;
    const a = randArray(M * K, 1), b = randArray(N * K, 2), bias = randArray(N, 3), res = randArray(M * N, 4);
    const mm = matmul64(a, b, M, N, K, false, true);
    for (const act of ['gelu', 'silu', 'relu'] as const) {
      const f = { gelu: gelu64, silu: silu64, relu: (x: number) => Math.max(0, x) }[act];
      const ref = Array.from(mm, (v, i) => f(0.5 * v + bias[i % N]) + res[i]);
      for (const v of VARIANTS) {
        const got = await read(matmul(t(a, [M, K]), t(b, [N, K]), { transB: true, bias: t(bias, [N]), activation: act, alpha: 0.5, residual: t(res, [M, N]), variant: v }));
        expectClose(got, ref, 3e-6, `${act} ${v}`);
      }
    }
  });

  it('batched operands and a shared 2-D operand', async () => {
    const Bn = 3, M = 5, N = 7, K = 9;
    const a = randArray(Bn * M * K, 1), b = randArray(Bn * K * N, 2), w = randArray(K * N, 3);
    const got = await read(matmul(t(a, [Bn, M, K]), t(b, [Bn, K, N])));
    const ref: number[] = [];
    for (let i = 0; i < Bn; i++) ref.push(...matmul64(a.subarray(i * M * K), b.subarray(i * K * N), M, N, K));
    expectClose(got, ref, 2e-6, 'batched');
    const shared = await read(matmul(t(a, [Bn, M, K]), t(w, [K, N])));
    expectClose(shared, matmul64(a, w, Bn * M, N, K), 2e-6, 'shared B');
    const sharedA = await read(matmul(t(w, [N, K]), t(b, [Bn, K, N]), { transA: false }).view([Bn, N, N]));
    const refA: number[] = [];
    for (let i = 0; i < Bn; i++) refA.push(...matmul64(w, b.subarray(i * K * N), N, N, K));
    expectClose(sharedA, refA, 2e-6, 'shared A');
  });

  it('gradients of A, B, bias and residual match finite differences (with the fused epilogue)', async () => {
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]]) {
      await gradCheck(([a, b, bias, res]) => matmul(a, b, { transA, transB, bias, activation: 'gelu', residual: res, alpha: 0.7 }), [
        { data: randArray(15, 1), shape: transA ? [5, 3] : [3, 5] },
        { data: randArray(20, 2), shape: transB ? [4, 5] : [5, 4] },
        { data: randArray(4, 3), shape: [4] },
        { data: randArray(12, 4), shape: [3, 4] },
      ]);
    }
    await gradCheck(([a, b]) => matmul(a, b), [{ data: randArray(2 * 3 * 4, 5), shape: [2, 3, 4] }, { data: randArray(2 * 4 * 2, 6), shape: [2, 4, 2] }]);
    await gradCheck(([x, w, b]) => linear(x, w, b), [{ data: randArray(2 * 3 * 4, 5), shape: [2, 3, 4] }, { data: randArray(5 * 4, 6), shape: [5, 4] }, { data: randArray(5, 7), shape: [5] }]);
  });

  it('accepts f16 operands with f32 accumulation where the adapter has shader-f16', async function () {
    const g = await device();
    if (!g.hasF16) this.skip();
    const M = 33, N = 20, K = 41;
    const a = randArray(M * K, 1), b = randArray(K * N, 2);
    const A = cast(t(a, [M, K]), 'f16'), B = cast(t(b, [K, N]), 'f16');
    const ah = await read(A), bh = await read(B); // the rounded f16 values
    for (const v of ['rb4x8', 'rb4x8g', 'tiled']) expectClose(await read(matmul(A, B, { variant: v })), matmul64(ah, bh, M, N, K), 2e-6, `f16 ${v}`);
  });

  it('names the op and the shapes when inner dimensions differ', () => {
    expect(() => matmul(t(randArray(6, 1), [2, 3]), t(randArray(8, 1), [4, 2]))).to.throw(/matmul: inner dimensions differ: \[2,3\] · \[4,2\] \(3 vs 4\)/);
    expect(() => linear(t(randArray(6, 1), [2, 3]), t(randArray(8, 1), [2, 4]))).to.throw(/linear: input \[2,3\] does not end in 4/);
  });

  it('the autotuner times the candidates and caches the fastest per problem', async () => {
    const A = t(randArray(40 * 24, 1), [40, 24]), B = t(randArray(24 * 16, 2), [24, 16]);
    const results = await autotune(() => { matmul(A, B).dispose(); }, { reps: 1 });
    expect(results).to.have.length(1);
    const r = results[0];
    const p: MatmulProblem = r.problem;
    expect(Object.keys(r.ms)).to.have.members(candidates(p));
    expect(r.ms[r.variant]).to.equal(Math.min(...Object.values(r.ms)));
    expect(tuningTable()[r.key]).to.equal(r.variant);
    // A second run finds it tuned already.
    expect(await autotune(() => { matmul(A, B).dispose(); })).to.have.length(0);
    Tensor.from([0]).dispose();
  });
});
