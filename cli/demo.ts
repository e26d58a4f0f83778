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
import { trainingLoss } from '../diffusion/train.js';
import { Generator, randn } from '../kernels/random.js';
import { syntheticDataset, writeClassGrid } from '../data/dataset.js';
import { AutoencoderKL, SMALL_VAE_32 } from '../vae/model.js';
import { loadVae } from '../vae/checkpoint.js';
import { trainVae, encodeDataset, psnr } from '../vae/train.js';
import { readSafetensors } from '../engine/safetensors.js';
import { readWeights, ditFromWeights } from '../dit/checkpoint.js';
import { LatentSet, trainDiT, useEma } from '../dit/train.js';
import { reconstructionGrid } from './vae.js';
import { sampleGrid, smallDiTConfig } from './train.js';
import { Progress } from './progress.js';
import type { Args } from './args.js';

export async function runDemo(a: Args): Promise<number> {
  // CI (and --quick) runs a shorter pipeline; checkpoints in out/ are reused unless --fresh.
  const quick = a.bool('quick') || process.env.CI === 'true';
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
  if (a.bool('skip-timing')) { await pipeline(a, quick); return 0; }
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

  await pipeline(a, quick);
  return 0;
}

const exists = (f: string) => existsSync(f);

/** Built-in data → VAE → latent cache → DiT → class-conditional samples, each stage reused when its file exists. */
async function pipeline(a: Args, quick: boolean): Promise<void> {
  const fresh = a.bool('fresh');
  const vaeFile = 'out/vae-small.safetensors', latFile = 'out/latents.safetensors', ditFile = 'out/dit-small.safetensors';
  process.stdout.write(`\nthe pipeline on the built-in dataset (${quick ? 'quick' : 'standard'} lengths; outputs in out/):\n`);
  const t0 = performance.now();
  const train = await syntheticDataset('train', { onProgress: (m) => process.stderr.write(`  ${m}\n`) });
  const test = await syntheticDataset('test', { onProgress: (m) => process.stderr.write(`  ${m}\n`) });
  await writeClassGrid(train, 'out/data-grid.png', 10, 3);
  process.stdout.write(`  data: ${train.count} train / ${test.count} test images, classes ${train.classes.join(', ')} → out/data-grid.png\n`);

  let vae: AutoencoderKL;
  if (exists(vaeFile) && !fresh) {
    vae = await loadVae(vaeFile);
    process.stdout.write(`  VAE: reusing ${vaeFile}\n`);
  } else {
    const steps = a.num('vae-steps') ?? (quick ? 120 : 400);
    vae = new AutoencoderKL(SMALL_VAE_32, 0);
    const progress = new Progress('  VAE training', steps);
    await trainVae(vae, train, test, { steps, batch: 16, lr: 1e-3, evalEvery: 0, evalImages: 256, checkpoint: vaeFile, onLog: (m) => { if (m.loss !== undefined) progress.update(m.step, `L1 ${m.loss.toFixed(4)}`); } });
  }
  const p = await psnr(vae, test, quick ? 256 : 1000);
  process.stdout.write(`  VAE: held-out reconstruction PSNR ${p.toFixed(2)} dB (32×32 RGB → 8×8×4 latents)\n`);
  await reconstructionGrid(vae, test, 'out/vae-small-recon.png');

  if (!exists(latFile) || fresh) {
    const n = a.num('latents') ?? (quick ? 4000 : 20000);
    const sub = { ...train, count: n, images: train.images.subarray(0, n * 3072), labels: train.labels.subarray(0, n) };
    const progress = new Progress('  encoding', n);
    const r = await encodeDataset(vae, sub, latFile, { scaleFromData: true, onProgress: (d) => progress.update(d) });
    process.stdout.write(`  latents: ${n} images encoded, scale factor ${r.scale.toFixed(4)} → ${latFile}\n`);
  }
  const data = new LatentSet(await readSafetensors(latFile));
  let model: DiT;
  if (exists(ditFile) && !fresh) {
    model = ditFromWeights(await readWeights(ditFile));
    process.stdout.write(`  DiT: reusing ${ditFile}\n`);
  } else {
    const steps = a.num('dit-steps') ?? (quick ? 200 : 1500);
    model = new DiT(smallDiTConfig(data, a), {}, 0);
    process.stdout.write(`  DiT: ${model.numParameters().toLocaleString('en-US')} parameters, ${model.numTokens} tokens of width ${model.config.hiddenSize}, ${model.config.depth} blocks\n`);
    const progress = new Progress('  DiT training', steps);
    const r = await trainDiT(model, new GaussianDiffusion({}), data, { steps, batch: 64, lr: 3e-4, emaDecay: quick ? 0.99 : 0.999, checkpoint: ditFile, logEvery: 25, onLog: (m) => progress.update(m.step, `loss ${m.loss.toFixed(4)}, ${m.stepsPerSec.toFixed(2)} steps/s`) });
    useEma(model, r.ema);
    process.stdout.write(`  DiT: ${steps} steps in ${r.seconds.toFixed(0)} s, final loss ${r.lastLoss.toFixed(4)} → ${ditFile}\n`);
  }
  await sampleGrid(model, vae, data.scale, data.classes, 'out/dit-small-samples.png', { steps: quick ? 25 : 50, cfg: 3, perClass: quick ? 4 : 8 });
  process.stdout.write(`  pipeline done in ${((performance.now() - t0) / 1000).toFixed(0)} s. See the pictures in out/, or the browser page: npm run web → http://127.0.0.1:8080/\n`);
  model.dispose(); vae.dispose(); data.dispose();
}
