// `dit demo`, the README's main job: the adapter, parity with the official PyTorch dumps (when
// ../shared/reference is present), DiT-S/2 step timings, and a short sampling run written as a PNG.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getDevice, describeAdapter } from '../engine/device.js';
import { scope, noGrad, memory } from '../engine/tensor.js';
import { backward } from '../engine/autograd.js';
import { verifyReference } from '../dit/verify.js';
import { DiT } from '../dit/model.js';
import { ditGflops } from '../dit/config.js';
import { GaussianDiffusion } from '../diffusion/gaussian.js';
import { generate } from '../diffusion/sample.js';
import { trainingLoss } from '../diffusion/train.js';
import { Generator, randn } from '../kernels/random.js';
import { toImage, grid, writePng } from '../data/png.js';
import { Progress } from './progress.js';
import type { Args } from './args.js';

export async function runDemo(a: Args): Promise<number> {
  const g = await getDevice();
  const A = g.adapter;
  process.stdout.write(`adapter: ${describeAdapter(A)}\n  features: ${A.features.filter((f) => ['shader-f16', 'subgroups', 'timestamp-query'].includes(f)).join(', ') || '(none of shader-f16, subgroups, timestamp-query)'}; subgroup size ${A.subgroupMinSize || '?'}–${A.subgroupMaxSize || '?'}\n  limits: maxStorageBufferBindingSize ${A.limits.maxStorageBufferBindingSize}, maxBufferSize ${A.limits.maxBufferSize}, workgroup storage ${A.limits.maxComputeWorkgroupStorageSize}, invocations ${A.limits.maxComputeInvocationsPerWorkgroup}\n`);

  const ref = a.str('reference-dir') ?? process.env.DIT_REFERENCE_DIR ?? fileURLToPath(new URL('../../../shared/reference', import.meta.url));
  if (existsSync(ref)) {
    process.stdout.write(`\nparity with the official PyTorch DiT (${ref}):\n`);
    for (const f of ['dit_tiny_p2.safetensors', 'dit_tiny_p4.safetensors', 'dit_tiny_p2_nosigma.safetensors', 'sample_loop_tiny_p2.safetensors', 'train_step_tiny.safetensors']) {
      const file = path.join(ref, f);
      if (!existsSync(file)) continue;
      const rep = await verifyReference(file);
      const worst = rep.rows.reduce((m, r) => (r.metric === 'rel' ? Math.max(m, r.error) : m), 0);
      process.stdout.write(`  ${f.padEnd(34)} ${rep.kind.padEnd(11)} ${String(rep.rows.length).padStart(4)} checks  worst rel error ${worst.toExponential(2)}  ${rep.pass ? 'PASS' : 'FAIL'}\n`);
    }
  }

  // DiT-S/2 at 256 px (32×32×4 latents): one forward and one training step, timed.
  const B = a.num('batch') ?? 2;
  process.stdout.write(`\nDiT-S/2 at 256 px, batch ${B}:\n`);
  const model = new DiT('DiT-S/2', {}, 0);
  process.stdout.write(`  parameters ${model.numParameters().toLocaleString('en-US')} (trainable), ${ditGflops(model.config).toFixed(2)} Gflops per image forward\n`);
  const diffusion = new GaussianDiffusion({});
  const gen = new Generator(1);
  const x = randn([B, 4, 32, 32], 7).keep();
  const y = Array.from({ length: B }, (_, i) => i);
  let t0 = performance.now();
  await scope(() => noGrad(() => model.forward(x, y.map((i) => 100 * i), y))).data();
  const fwd = performance.now() - t0;
  t0 = performance.now();
  const loss = scope(() => { const l = trainingLoss(model, diffusion, { x0: x, y }, gen).lossMean; backward(l); return l; });
  const lv = await loss.item();
  const step = performance.now() - t0;
  process.stdout.write(`  forward ${(fwd / 1000).toFixed(2)} s (${((B * ditGflops(model.config) * 2) / (fwd / 1000)).toFixed(1)} GFLOP/s), forward+backward ${(step / 1000).toFixed(2)} s, loss ${lv.toFixed(4)}; live GPU memory ${(memory().liveBytes / 2 ** 20).toFixed(0)} MiB\n`);
  model.dispose();
  x.dispose();
  loss.dispose();

  // A tiny class-conditional DiT sampled with 10 DDIM steps and guidance (untrained: this shows the pipeline).
  const tiny = new DiT(undefined, { inputSize: 8, hiddenSize: 64, depth: 2, numHeads: 4, numClasses: 10 }, 3);
  tiny.eval();
  const d10 = new GaussianDiffusion({ respacing: 'ddim10' });
  const progress = new Progress('  sampling', d10.numTimesteps);
  const labels = [0, 1, 2, 3];
  const lat = await generate(tiny, d10, labels, [4, 8, 8], { sampler: 'ddim', cfgScale: 4, nullLabel: 10, seed: 0, onStep: ({ step }) => progress.update(step + 1) });
  const data = (await lat.data()) as Float32Array;
  const out = a.str('out') ?? 'out/demo-samples.png';
  await writePng(out, grid(labels.map((_, i) => toImage(data.subarray(i * 256, (i + 1) * 256), 4, 8, 8, 'minmax')), 4, 8));
  process.stdout.write(`  wrote ${out}\n`);
  tiny.dispose();
  lat.dispose();
  return 0;
}
