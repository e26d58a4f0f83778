import { expect } from 'chai';
import { Tensor, scope } from '../engine/tensor.js';
import { backward } from '../engine/autograd.js';
import { map, mul } from '../kernels/elementwise.js';
import { concat, slice } from '../kernels/shape.js';
import { mean } from '../kernels/reduce.js';
import { Generator } from '../kernels/random.js';
import { FlowMatching } from '../diffusion/flow.js';
import { generate, type Denoiser } from '../diffusion/sample.js';
import { device, expectClose, randArray, read } from './helpers.js';

const B = 3, C = 2, H = 2, W = 3, PER = C * H * W, N = B * PER;

/** The loss in float64: per sample, mean of (w·x_u − (ε − x0))² with x_u = (1 − u)·x0 + u·ε. */
function lossF64(x0: Float32Array, noise: Float32Array, u: number[], w: Float32Array | Float64Array): Float64Array {
  const out = new Float64Array(B);
  for (let i = 0; i < N; i++) {
    const b = Math.floor(i / PER), xt = (1 - u[b]) * x0[i] + u[b] * noise[i];
    out[b] += (w[i % PER] * xt - (noise[i] - x0[i])) ** 2 / PER;
  }
  return out;
}

describe('flow matching (linear interpolant, velocity prediction)', () => {
  before(device);
  const x0 = randArray(N, 1), noise = randArray(N, 2), w = randArray(PER, 3, 0.5), u = [0.1, 0.5, 0.93];

  it('interpolates x_u = (1 − u)·x0 + u·ε per sample', async () => {
    const fm = new FlowMatching();
    const got = await read(scope(() => fm.interpolate(Tensor.from(x0, [B, C, H, W]), u, Tensor.from(noise, [B, C, H, W]))).keep());
    expectClose(got, Array.from(x0, (x, i) => (1 - u[Math.floor(i / PER)]) * x + u[Math.floor(i / PER)] * noise[i]), 1e-6, 'x_u');
  });

  it('gives the per-sample velocity MSE and its gradient (against float64 and finite differences)', async () => {
    const fm = new FlowMatching();
    // A differentiable stand-in for the model: x_u scaled by learnt weights w.
    const wt = Tensor.from(w, [1, C, H, W]).setRequiresGrad();
    const loss = fm.trainingLosses((xt) => mul(xt, wt), Tensor.from(x0, [B, C, H, W]), u, Tensor.from(noise, [B, C, H, W]));
    expectClose(await read(loss.loss), lossF64(x0, noise, u, w), 1e-5, 'loss');
    backward(mean(loss.loss));
    const grad = await read(wt.grad!);
    const fd = Array.from(w, (_, k) => {
      const h = 1e-4, plus = Float64Array.from(w), minus = Float64Array.from(w);
      plus[k] += h; minus[k] -= h;
      const avg = (v: Float64Array) => v.reduce((a, b) => a + b, 0) / B;
      return (avg(lossF64(x0, noise, u, plus)) - avg(lossF64(x0, noise, u, minus))) / (2 * h);
    });
    expectClose(grad, fd, 1e-3, '∂loss/∂w');
  });

  it('draws logit-normal training times inside (0, 1), centred on sigmoid(mean), reproducibly', () => {
    const fm = new FlowMatching({ kind: 'logit-normal', mean: 0, std: 1 });
    const a = fm.drawTimes(new Generator(5), 4000), b = fm.drawTimes(new Generator(5), 4000);
    expect(a).to.deep.equal(b);
    expect(a.every((v) => v > 0 && v < 1)).to.equal(true);
    const m = a.reduce((s, v) => s + v, 0) / a.length;
    expect(m).to.be.closeTo(0.5, 0.02);
    // A logit-normal with std 1 puts ~48% of its mass in (0.25, 0.75), a uniform 50%; its tails are thinner.
    expect(a.filter((v) => v < 0.05).length / a.length).to.be.below(0.01);
  });

  it('samples a point mass exactly with Euler steps of its exact velocity field, with and without guidance', async () => {
    // Data x0 = c everywhere: the exact velocity at (x, u) is (x − c)/u, and each Euler step keeps x on the line to c.
    const c = 0.7;
    const model: Denoiser = {
      forward: (x, t) => map('(x - p) / (t / 1000.0)', { x, t: Tensor.from(Float32Array.from(t), [t.length, 1, 1, 1]) }, { label: 'test.v', p: c }),
      forwardWithCfg(x, t, y) { return this.forward(x, t, y); },
    };
    for (const [sampler, cfg] of [['euler', 1], ['euler', 3], ['heun', 1], ['ddpm', 1], ['ddpm', 3]] as const) {
      const z = await generate(model, new FlowMatching(), [0, 1], [C, H, W], { sampler, steps: 7, cfgScale: cfg, nullLabel: 2, seed: 3 });
      expectClose(await read(z), new Array(2 * PER).fill(c), 1e-5, `${sampler}, guidance ${cfg}`);
      z.dispose();
    }
  });

  it("draws a Gaussian's mean and spread with ancestral (ddpm) steps of its exact velocity field, as the ODE does", async () => {
    // Data x0 ~ N(m, τ²) per value: x_u = (1 − u)·x0 + u·ε is Gaussian, and the exact velocity is E[ε − x0 | x_u].
    const m = 0.3, tau = 0.5;
    const u = '(t / 1000.0)';
    const velocity = `(${u} - (1.0 - ${u}) * q * q) / ((1.0 - ${u}) * (1.0 - ${u}) * q * q + ${u} * ${u}) * (x - (1.0 - ${u}) * p) - p`;
    const model: Denoiser = {
      forward: (x, t) => map(velocity, { x, t: Tensor.from(Float32Array.from(t), [t.length, 1, 1, 1]) }, { label: 'test.gaussV', p: m, q: tau }),
      forwardWithCfg(x, t, y) { return this.forward(x, t, y); },
    };
    const labels = new Array(8).fill(0), shape: [number, number, number] = [4, 16, 16];
    const stats = async (sampler: 'ddpm' | 'heun', steps: number, seed: number) => {
      const v = await read(await generate(model, new FlowMatching(), labels, shape, { sampler, steps, cfgScale: 1, nullLabel: 1, seed }));
      const mu = v.reduce((a, b) => a + b, 0) / v.length;
      return { mu, sd: Math.sqrt(v.reduce((a, b) => a + (b - mu) ** 2, 0) / v.length) };
    };
    // 8,192 values: the sample std of the mean is 0.006, of the spread 0.004. Few ancestral steps under-disperse
    // (x̂0 is a posterior mean), so the spread is checked at 200 steps, where the shortfall is ~1.4%.
    for (const [sampler, steps] of [['ddpm', 200], ['heun', 12]] as const) {
      const { mu, sd } = await stats(sampler, steps, 5);
      expect(mu, `${sampler} mean`).to.be.closeTo(m, 0.025);
      expect(sd, `${sampler} std`).to.be.closeTo(tau, 0.02);
    }
    // Its fresh noise comes from the seed: the same seed draws the same samples.
    expect(await stats('ddpm', 4, 1)).to.deep.equal(await stats('ddpm', 4, 1));
  });

  it('guides only at the noise levels of its guidance interval, and samples as guidance 1 outside it', async () => {
    // A stand-in whose velocity depends on the label (the null label 2 included), guided as DiT.forwardWithCfg.
    const calls: string[] = [];
    const velocity = (x: Tensor, y: ArrayLike<number>) => map('x * (0.5 + 0.25 * y)', { x, y: Tensor.from(Float32Array.from(y), [y.length, 1, 1, 1]) }, { label: 'test.v' });
    const model: Denoiser = {
      forward(x, t, y) { calls.push(`plain ${t[0] / 1000} ×${x.shape[0]}`); return velocity(x, y); },
      forwardWithCfg(x, t, y, s) {
        calls.push(`guided ${t[0] / 1000}`);
        const half = slice(x, 0, 0, x.shape[0] / 2), n = half.shape[0];
        const c = velocity(half, Array.from(y).slice(0, n)), u = velocity(half, Array.from(y).slice(n));
        const g = map('u + p * (c - u)', { c, u }, { label: 'test.cfg', p: s });
        return concat([g, g], 0);
      },
    };
    const draw = async (cfgScale: number, cfgInterval?: [number, number]) => {
      calls.length = 0;
      const z = await generate(model, new FlowMatching(), [0, 1], [C, H, W], { sampler: 'euler', steps: 4, cfgScale, cfgInterval, nullLabel: 2, seed: 3 });
      return read(z);
    };
    // Euler 4 steps evaluates the model at u = 1, 0.75, 0.5, 0.25; guidance in [0.3, 0.8] covers the middle two.
    const some = await draw(3, [0.3, 0.8]);
    expect(calls).to.deep.equal(['plain 1 ×2', 'guided 0.75', 'guided 0.5', 'plain 0.25 ×2']);
    const everywhere = await draw(3), within = await draw(3, [0, 1]), nowhere = await draw(3, [0.9, 0.95]), unguided = await draw(1);
    expect(within).to.deep.equal(everywhere);
    expect(nowhere).to.deep.equal(unguided);
    const differs = (a: Float32Array, b: Float32Array) => a.some((v, i) => Math.abs(v - b[i]) > 1e-4);
    expect(differs(some, everywhere) && differs(some, unguided)).to.equal(true);
    let err: unknown = null;
    try { await draw(3, [0.8, 0.2]); } catch (e) { err = e; }
    expect(String(err)).to.match(/guidance interval is \[lo, hi\] with 0 ≤ lo < hi ≤ 1, got \[0.8, 0.2\]/);
  });

  it('refuses a sampler of the other process', async () => {
    const model: Denoiser = { forward: (x) => x, forwardWithCfg: (x) => x };
    let err: unknown = null;
    try { await generate(model, new FlowMatching(), [0], [C, H, W], { sampler: 'ddim', nullLabel: 1 }); } catch (e) { err = e; }
    expect(String(err)).to.match(/flow matching samples with euler, heun or ddpm, not 'ddim'/);
  });
});
