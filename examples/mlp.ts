// A two-layer MLP fitted to y = sin(3x) on [-1, 1] with the engine alone: modules, AdamW, autograd, scopes.
// Run: node mlp.js   (exits non-zero unless the loss gets below 0.01)
import { getDevice, closeDevice, Tensor, Module, Linear, Generator, AdamW, mse, backward, scope } from 'dit-webgpu/engine';

class MLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(gen: Generator) {
    super();
    this.fc1 = this.module('fc1', new Linear(1, 64, gen));
    this.fc2 = this.module('fc2', new Linear(64, 1, gen));
  }
  forward(x: Tensor): Tensor { return this.fc2.forward(this.fc1.forward(x, { activation: 'gelu' })); }
}

await getDevice();
const N = 256;
const xs = Float32Array.from({ length: N }, (_, i) => -1 + (2 * i) / (N - 1));
const x = Tensor.from(xs, [N, 1]);
const y = Tensor.from(xs.map((v) => Math.sin(3 * v)), [N, 1]);
const model = new MLP(new Generator(0));
const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0 });
let loss = Infinity;
for (let step = 1; step <= 400; step++) {
  const l = scope(() => {            // frees the step's intermediates; the returned loss survives
    const l = mse(model.forward(x), y);
    backward(l);                     // gradients accumulate into each parameter's .grad
    opt.step();
    opt.zeroGrad();
    return l;
  });
  if (step % 100 === 0) console.log(`step ${step}: mse ${(loss = await l.item()).toFixed(5)}`);
  l.dispose();
}
await closeDevice();
if (!(loss < 0.01)) throw new Error(`the MLP did not fit: mse ${loss}`);
