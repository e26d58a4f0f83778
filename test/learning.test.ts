// Does the whole training loop learn? Parity tests prove one forward, one loss, one AdamW step and one
// sampling step equal the official code's; these train end to end on a latent distribution whose right
// samples are known exactly, and check the random streams a run draws from are independent.
import { expect } from 'chai';
import { DiT } from '../dit/model.js';
import { DiTTrainer, streamSeed } from '../dit/train.js';
import { patternLatents } from './latents.js';
import { GaussianDiffusion } from '../diffusion/gaussian.js';
import { OFFICIAL_OBJECTIVE } from '../diffusion/objective.js';
import { generate } from '../diffusion/sample.js';
import { device, read, randArray, trainConfig } from './helpers.js';

describe('learning end to end', function () {
  this.timeout(600_000);
  before(device);

  it('a tiny DiT trained on three fixed latent patterns (+ noise 0.1) samples each requested pattern', async () => {
    const shape: [number, number, number] = [4, 4, 4], per = 64, K = 3;
    const patterns = Array.from({ length: K }, (_, k) => randArray(per, 100 + k));
    const data = patternLatents(patterns, shape, 1024, 0.1);
    const model = new DiT(undefined, { inputSize: 4, inChannels: 4, numClasses: K, patchSize: 2, hiddenSize: 64, depth: 2, numHeads: 2 }, 0);
    const trainer = new DiTTrainer(model, OFFICIAL_OBJECTIVE, data, trainConfig({ steps: 600, batch: 32, lr: 2e-3, warmup: 20, emaDecay: 0.99 }));
    while (trainer.step < 600) trainer.trainStep();
    await trainer.checkFinite();
    trainer.useEma();
    const labels = Array.from({ length: 30 }, (_, i) => i % K);
    const x = await generate(model, new GaussianDiffusion({ respacing: 'ddim25' }), labels, shape, { sampler: 'ddim', cfgScale: 1, nullLabel: K });
    const got = await read(x);
    let right = 0;
    const rms: number[] = [];
    labels.forEach((l, i) => {
      const v = got.subarray(i * per, (i + 1) * per);
      const d = patterns.map((p) => Math.sqrt(p.reduce((a, pv, j) => a + (pv - v[j]) ** 2, 0) / per));
      if (d.indexOf(Math.min(...d)) === l) right++;
      rms.push(d[l]);
    });
    rms.sort((a, b) => a - b);
    // Distinct patterns are ~1.4 apart (rms); the data's own spread is 0.1.
    expect(right, `nearest pattern = requested for ${right}/30`).to.be.at.least(27);
    expect(rms[15], `median rms to the requested pattern (sorted: ${rms.map((r) => r.toFixed(2)).join(' ')})`).to.be.below(0.4);
    trainer.dispose(); model.dispose(); x.dispose();
  });

  it('a run draws noise, timesteps, data order and label dropout from independent streams', async () => {
    const seeds = (['noise', 'timesteps', 'order', 'labelDrop'] as const).map((s) => streamSeed(0, s));
    expect(new Set(seeds).size).to.equal(4);
    // Label dropout must not follow the data order: the dropped fraction among the first tenth of the data
    // is ~10%, as everywhere (when the two shared a stream, those samples were always dropped).
    const data = patternLatents([randArray(16, 1), randArray(16, 2)], [1, 4, 4], 1000, 0.1);
    const model = new DiT(undefined, { inputSize: 4, inChannels: 1, numClasses: 2, patchSize: 2, hiddenSize: 16, depth: 1, numHeads: 1 }, 0);
    const trainer = new DiTTrainer(model, OFFICIAL_OBJECTIVE, data, trainConfig({ batch: 50 }));
    let low = 0, lowDropped = 0;
    for (let s = 0; s < 40; s++) {
      const idx = Array.from(trainer.gens.order.randHost(50), (u) => Math.floor(u * 1000));
      const dropped = model.yEmbedder.dropLabels(idx.map(() => 0), true, trainer.gens.labelDrop);
      idx.forEach((i, b) => { if (i < 100) { low++; if (dropped[b] === 2) lowDropped++; } });
    }
    expect(lowDropped / low).to.be.within(0.02, 0.25);
    trainer.dispose(); model.dispose();
  });

  it('trains on a latent cache larger than one storage binding (batches are gathered on the CPU)', async function () {
    const limit = (await device()).maxBindingBytes;
    if (limit > 256 * 2 ** 20) this.skip(); // the adapter's binding limit (over 256 MiB) would need a cache too large for a test
    const per = 4 * 8 * 8, count = Math.ceil((limit + 4096) / (4 * per));
    const data = patternLatents([randArray(per, 5), randArray(per, 6)], [4, 8, 8], count, 0.1);
    expect(count * per * 4).to.be.greaterThan(limit);
    const model = new DiT(undefined, { inputSize: 8, inChannels: 4, numClasses: 2, patchSize: 4, hiddenSize: 16, depth: 1, numHeads: 1 }, 0);
    const trainer = new DiTTrainer(model, OFFICIAL_OBJECTIVE, data, trainConfig({ batch: 8 }));
    trainer.trainStep(true);
    expect(Number.isFinite((await trainer.metrics()).loss)).to.equal(true);
    trainer.dispose(); model.dispose();
  });
});
