import { expect } from 'chai';
import { matmul, linear, problemKey, matmulCandidates, type MatmulProblem } from '../kernels/matmul.js';
import { selfAttention } from '../kernels/attention.js';
import { adaLNModulate } from '../kernels/layernorm.js';
import { conv2d } from '../kernels/conv2d.js';
import { scale } from '../kernels/elementwise.js';
import { sum } from '../kernels/reduce.js';
import { backward } from '../engine/autograd.js';
import { autotune, tuneProblem } from '../kernels/autotune.js';
import { family, randomNormal } from '../kernels/registry.js';
import { adapterKey, clearTuningTable, isTuned, loadStoredTuning, recordProblems, storeTuning, tuningTable } from '../kernels/tuning.js';
import { device, t } from './helpers.js';

const problem = (M: number, N: number, K: number): MatmulProblem => ({ M, N, K, batch: 1, transA: false, transB: false, strideA: 0, strideB: 0, dtA: 'f32', dtB: 'f32' });

describe('matmul', () => {
  before(device);

  it('names the op and the shapes when inner dimensions differ', () => {
    expect(() => matmul(t(randomNormal(6, 1), [2, 3]), t(randomNormal(8, 1), [4, 2]))).to.throw(/matmul: inner dimensions differ: \[2,3\] · \[4,2\] \(3 vs 4\)/);
    expect(() => linear(t(randomNormal(6, 1), [2, 3]), t(randomNormal(8, 1), [2, 4]))).to.throw(/linear: input \[2,3\] does not end in 4/);
  });

  it('a forced variant runs the backward products too (none is left to the automatic choice)', async () => {
    const step = (variant?: string) => () => {
      const a = t(randomNormal(15, 1), [5, 3], true), b = t(randomNormal(12, 2), [3, 4], true);
      backward(sum(matmul(a, b, { variant })));
      a.dispose(); b.dispose();
    };
    expect((await recordProblems(step('tiled'))).map((p) => p.family)).to.deep.equal([]);
    expect((await recordProblems(step())).map((p) => p.family)).to.deep.equal(['matmul', 'matmul', 'matmul']);
  });
});

describe('autotuner', () => {
  before(device);
  afterEach(clearTuningTable);

  it('checks and times every applicable candidate, keeps the fastest for this adapter, and tunes a problem once', async () => {
    const A = t(randomNormal(40 * 24, 1), [40, 24]), B = t(randomNormal(24 * 16, 2), [24, 16]);
    const results = await autotune(() => { matmul(A, B).dispose(); }, { reps: 1 });
    expect(results).to.have.length(1);
    const r = results[0];
    expect(r.family).to.equal('matmul');
    expect(r.failed).to.deep.equal({});
    expect([...Object.keys(r.ms), ...Object.keys(r.skipped)]).to.have.members(matmulCandidates(r.problem as MatmulProblem));
    expect(r.ms[r.variant]).to.equal(Math.min(...Object.values(r.ms)));
    expect(tuningTable()[`matmul ${r.key}`]).to.equal(r.variant);
    expect(await autotune(() => { matmul(A, B).dispose(); })).to.have.length(0);
  });

  it('reports and excludes a candidate that throws or disagrees with float64, never silently', async () => {
    const p = problem(19, 12, 33);
    const matmulFamily = family('matmul');
    // 'rb4x8' is made 1% off; 'nonsense' is no variant at all.
    const rigged = { ...matmulFamily, run: (q: unknown, x: Parameters<typeof matmulFamily.run>[1], v?: string) => (v === 'rb4x8' ? [scale(matmul(x[0], x[1], { variant: v }), 1.01)] : matmulFamily.run(q, x, v)) };
    const logs: string[] = [];
    const r = await tuneProblem({ family: 'matmul', key: problemKey(p), problem: p }, { reps: 1, candidates: ['rb4x4', 'rb4x8', 'nonsense'], onProgress: (m) => logs.push(m) }, rigged);
    expect(r.variant).to.equal('rb4x4');
    expect(Object.keys(r.ms)).to.deep.equal(['rb4x4']);
    expect(r.failed.rb4x8).to.match(/rel-to-max error .* against float64 is over/);
    expect(r.failed.nonsense).to.match(/unknown variant 'nonsense'/);
    expect(logs.join('\n')).to.match(/rb4x8 excluded/).and.to.match(/nonsense excluded/);
    await tuneProblem({ family: 'matmul', key: problemKey(p), problem: p }, { candidates: ['nonsense'] }, rigged).then(
      () => expect.fail('a problem no candidate passes must throw'),
      (e: Error) => expect(e.message).to.match(/no candidate passed \(nonsense: matmul: unknown variant/),
    );
  });

  it('tunes every family with alternatives: attention, layernorm and conv2d as well as matmul', async () => {
    const qkv = t(randomNormal(2 * 9 * 48, 3), [2, 9, 48]);
    const x = t(randomNormal(2 * 9 * 32, 4), [2, 9, 32]), sh = t(randomNormal(64, 5), [2, 32]), sc = t(randomNormal(64, 6), [2, 32]);
    const img = t(randomNormal(2 * 3 * 6 * 7, 7), [2, 3, 6, 7]), w = t(randomNormal(4 * 3 * 9, 8), [4, 3, 3, 3]);
    const results = await autotune(() => {
      selfAttention(qkv, 2).dispose();
      adaLNModulate(x, sh, sc).dispose();
      conv2d(img, w, null, { padding: 1 }).dispose();
    }, { reps: 1 });
    expect(results.map((r) => r.family)).to.have.members(['attention', 'layernorm', 'conv2d']);
    for (const r of results) {
      expect(r.failed, r.family).to.deep.equal({});
      expect(isTuned(r.family, r.key)).to.equal(true);
      expect(Object.keys(r.ms).length, `${r.family}: alternatives timed`).to.be.greaterThan(1);
    }
  });

  it('keeps choices per adapter: stored tables are keyed by name and driver, another adapter\'s entry changes nothing', async () => {
    const g = await device();
    const mine = adapterKey(g.adapter);
    expect(mine).to.include(g.adapter.description);
    const other = 'other vendor | gpu | device | some driver 1.0';
    expect(loadStoredTuning({ [other]: { 'matmul 1x8x8x8NNabf32f32': 'tiled' } })).to.equal(0);
    expect(tuningTable()).to.deep.equal({});
    expect(loadStoredTuning({ [mine]: { 'matmul 1x8x8x8NNabf32f32': 'rb4x4' } })).to.equal(1);
    expect(isTuned('matmul', problemKey(problem(8, 8, 8)))).to.equal(true);
    expect(storeTuning({ [other]: { x: 'y' } })).to.deep.equal({ [other]: { x: 'y' }, [mine]: { 'matmul 1x8x8x8NNabf32f32': 'rb4x4' } });
  });
});
