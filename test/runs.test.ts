// The training loop of a run folder as a library caller (the demo) uses it: no hooks at all.
import { expect } from 'chai';
import { existsSync, readFileSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DiT } from '../dit/model.js';
import { DiTTrainer, TRAIN_DEFAULTS } from '../dit/train.js';
import { GaussianDiffusion } from '../diffusion/gaussian.js';
import { Run, trainLoop } from '../runs/run.js';
import { patternLatents } from './latents.js';
import { device, randArray } from './helpers.js';

describe('run folders', function () {
  this.timeout(120_000);
  before(device);

  it('trainLoop without hooks still writes the final checkpoint and `latest`', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dit-run-'));
    try {
      const data = patternLatents([randArray(16, 1), randArray(16, 2)], [1, 4, 4], 64, 0.1);
      const model = new DiT(undefined, { inputSize: 4, inChannels: 1, numClasses: 2, patchSize: 2, hiddenSize: 16, depth: 1, numHeads: 1 }, 0);
      const train = { ...TRAIN_DEFAULTS, steps: 3, batch: 4 };
      const run = await Run.create(dir, {
        version: 1, model: model.config, train, diffusion: { schedule: 'linear', steps: 1000, learnSigma: true },
        data: { latents: 'patterns', dataset: null, count: data.count, shape: data.shape, scaleFactor: 1, classes: data.classes },
        vae: null, logEvery: 25, checkpointEvery: 500, keep: 2, samples: { every: 0, perClass: 1, steps: 2, cfg: 1 }, preset: null, init: null,
      });
      const trainer = new DiTTrainer(model, new GaussianDiffusion({}), data, train);
      await trainLoop(run, trainer, null);
      expect(readFileSync(path.join(dir, 'latest'), 'utf8').trim()).to.equal('step-3.safetensors');
      expect(existsSync(path.join(dir, 'checkpoints', 'step-3.safetensors'))).to.equal(true);
      trainer.dispose(); model.dispose();
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
