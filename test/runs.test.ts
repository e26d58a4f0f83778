// The training loop of a run folder as a library caller uses it: no hooks at all.
import { expect } from 'chai';
import { existsSync, readFileSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DiT } from '../dit/model.js';
import { DiTTrainer } from '../dit/train.js';
import { Run, trainRun } from '../runs/run.js';
import { planRun, dataInfo } from '../runs/plan.js';
import { patternLatents } from './latents.js';
import { device, randArray } from './helpers.js';

describe('run folders', function () {
  this.timeout(120_000);
  before(device);

  it('trainRun without hooks still writes the final checkpoint, `latest` and the snapshots of the learning curve', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dit-run-'));
    try {
      const data = patternLatents([randArray(16, 1), randArray(16, 2)], [1, 4, 4], 64, 0.1);
      const plan = planRun('tiny', dataInfo(data, 'patterns'),
        { model: { hiddenSize: 16, depth: 1, numHeads: 1 }, optim: { steps: 4, batch: 4 } }, { snapshots: 2 });
      const run = await Run.create(dir, plan);
      const model = new DiT(plan.model, {}, plan.seed);
      const trainer = new DiTTrainer(model, plan.recipe.objective, data, { ...plan.recipe.optim, seed: plan.seed });
      await trainRun(run, trainer, null);
      expect(readFileSync(path.join(dir, 'latest'), 'utf8').trim()).to.equal('step-4.safetensors');
      expect(existsSync(path.join(dir, 'checkpoints', 'step-4.safetensors'))).to.equal(true);
      expect((await run.snapshots()).map((s) => s.step)).to.deep.equal([2, 4]);
      trainer.dispose(); model.dispose();
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('planning a run', () => {
  const data = { latents: 'lat.safetensors', dataset: null, count: 100, shape: [4, 8, 8] as [number, number, number], scaleFactor: 1, classes: ['a', 'b'], teacher: { tokens: 64, dim: 8 } };

  it('refuses an alignment depth past the model\'s last block before any GPU work, naming the flag', () => {
    expect(() => planRun('quick', data, { model: { depth: 2 }, alignment: { depth: 3 } })).to.throw(/alignment depth 3 is past the model's last block \(depth 2\).*--align-depth/);
  });
});
