// What `dit bench` measures: per DiT config, the paper's analytic Gflops and parameters beside the forward
// pass, training step and sampling cost measured on this adapter; and the CPU cost of a dispatch through the
// engine beside a raw Dawn loop. Timing rule: a warm-up call (pipeline compilation is never timed), then the
// median of `reps` calls, each ended by a full GPU sync; on adapters with timestamp queries one more call is
// profiled and its summed kernel time reported as the GPU time.
import { gpu } from '../engine/device.js';
import { Tensor, scope, noGrad, keep, memory } from '../engine/tensor.js';
import { backward } from '../engine/autograd.js';
import { AdamW } from '../nn/optim.js';
import { randn, Generator } from '../kernels/random.js';
import { map } from '../kernels/elementwise.js';
import { DiT } from '../dit/model.js';
import { ditConfig, ditGflops, ditParams } from '../dit/config.js';
import { GaussianDiffusion } from '../diffusion/gaussian.js';
import { trainingLoss } from '../diffusion/train.js';

export interface BenchRow {
  model: string; batch: number; image_size: number; gflops_per_image: number; params: number;
  forward_ms: number | null; forward_warmup_ms: number | null; forward_gpu_ms: number | null; images_per_s: number | null; achieved_gflops: number | null; ceiling_fraction: number | null;
  train_step_ms: number | null; train_images_per_s: number | null; peak_mib: number | null;
  sampling_s_per_image: number | null;
  peer_forward_ms: number | null; peer_train_step_ms: number | null;
  /** PyTorch on the CPU (bench/peer_torch_cpu.py), DiT-S/2's row only. */
  peer_torch_cpu_forward_ms: number | null;
  status: string;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Median wall ms of `reps` synced calls after one warm-up; null (with the warm-up's seconds) when over budget. */
async function timeCalls(f: () => unknown, reps: number, budgetMs: number): Promise<{ ms: number | null; warmMs: number }> {
  const g = gpu();
  let t0 = performance.now();
  scope(() => { f(); });
  await g.sync('bench');
  const warmMs = performance.now() - t0;
  if (warmMs * (reps + 1) > budgetMs) return { ms: null, warmMs };
  const s: number[] = [];
  for (let r = 0; r < reps; r++) {
    t0 = performance.now();
    scope(() => { f(); });
    await g.sync('bench');
    s.push(performance.now() - t0);
  }
  return { ms: median(s), warmMs };
}

/** Summed kernel time (ms) of one profiled call, or null without timestamp queries. */
async function gpuMs(f: () => unknown): Promise<number | null> {
  const g = gpu();
  if (!g.hasTimestamps) return null;
  await g.sync('bench');
  g.profile.clear();
  g.setProfiling(true);
  scope(() => { f(); });
  await g.sync('bench');
  g.setProfiling(false);
  await g.sync('bench');
  return [...g.profile.values()].reduce((a, v) => a + v.ms, 0);
}

/**
 * What the configs measured so far predict: the best forward GFLOP/s and the training step's time over the
 * forward's. A measurement predicted over budget is skipped before its warm-up, which alone can take minutes.
 */
export interface MeasuredRate { forwardGflops: number; trainOverForward: number | null }

export interface BenchOptions { batch: number; imageSize: number; train: boolean; sampling: boolean; reps: number; budgetS: number; ceilingGflops: number | null; rate?: MeasuredRate | null; log?: (m: string) => void }

/** The rate the rows measured so far predict (from a warm-up alone when no median was taken), or null before the first forward. */
export function measuredRate(rows: BenchRow[]): MeasuredRate | null {
  const fwd = rows.filter((r) => r.forward_ms !== null || r.forward_warmup_ms !== null);
  if (!fwd.length) return null;
  const both = fwd.filter((r) => r.train_step_ms !== null);
  return {
    forwardGflops: Math.max(...fwd.map((r) => (2 * r.gflops_per_image * r.batch) / ((r.forward_ms ?? r.forward_warmup_ms!) / 1000))),
    trainOverForward: both.length ? Math.max(...both.map((r) => r.train_step_ms! / r.forward_ms!)) : null,
  };
}

/** Measures one named config ('DiT-S/2', …). Failures and budget overruns become the row's status. */
export async function benchConfig(name: string, o: BenchOptions): Promise<BenchRow> {
  const c = ditConfig(name, { inputSize: o.imageSize / 8 });
  const gf = ditGflops(c), B = o.batch;
  const row: BenchRow = {
    model: name, batch: B, image_size: o.imageSize, gflops_per_image: gf, params: ditParams(c), forward_ms: null, forward_warmup_ms: null, forward_gpu_ms: null, images_per_s: null,
    achieved_gflops: null, ceiling_fraction: null, train_step_ms: null, train_images_per_s: null, peak_mib: null, sampling_s_per_image: null,
    peer_forward_ms: null, peer_train_step_ms: null, peer_torch_cpu_forward_ms: null, status: 'ok',
  };
  const budgetMs = o.budgetS * 1000;
  const calls = o.reps + 1;
  const forwardS = o.rate ? (2 * gf * B) / o.rate.forwardGflops : null;
  if (forwardS !== null && forwardS * calls > o.budgetS) {
    row.status = `over budget: a forward predicted at ${forwardS.toFixed(0)} s (${o.rate!.forwardGflops.toPrecision(2)} GFLOP/s measured on smaller configs), ${calls} of them exceed --budget-s ${o.budgetS}`;
    return row;
  }
  let model: DiT | null = null;
  const held: Tensor[] = [];
  try {
    model = new DiT(c, {}, 0);
    const m = model;
    const x = keep(randn([B, c.inChannels, c.inputSize, c.inputSize], 1));
    held.push(x);
    const y = Array.from({ length: B }, (_, i) => i % c.numClasses), t = Array.from({ length: B }, (_, i) => (i * 97) % 1000);
    m.eval();
    const fwd = () => noGrad(() => m.forward(x, t, y));
    const f = await timeCalls(fwd, o.reps, budgetMs);
    row.forward_warmup_ms = f.warmMs;
    if (f.ms === null) { row.status = `over budget: one forward takes ${(f.warmMs / 1000).toFixed(1)} s (compilation included), ${o.reps + 1} of them exceed --budget-s ${o.budgetS}`; return row; }
    row.forward_ms = f.ms;
    row.forward_gpu_ms = await gpuMs(fwd);
    row.images_per_s = (1000 * B) / f.ms;
    row.achieved_gflops = (2 * gf * B) / (f.ms / 1000);
    if (o.ceilingGflops) row.ceiling_fraction = row.achieved_gflops / o.ceilingGflops;
    o.log?.(`  ${name}: forward ${f.ms.toFixed(1)} ms`);
    if (o.sampling) {
      // One DDPM step with guidance on B images = the model on 2B (conditional + null labels) + the update.
      const diffusion = new GaussianDiffusion({ learnSigma: c.learnSigma });
      const x2 = keep(randn([2 * B, c.inChannels, c.inputSize, c.inputSize], 2));
      held.push(x2);
      const yy = [...y, ...new Array(B).fill(c.numClasses)], tt = new Array(2 * B).fill(500);
      const noise = keep(randn(x2.shape, 3));
      held.push(noise);
      const s = await timeCalls(() => noGrad(() => diffusion.pSample(m.forwardWithCfg(x2, tt, yy, 4), x2, tt, noise)), o.reps, budgetMs);
      if (s.ms !== null) row.sampling_s_per_image = (250 * s.ms) / 1000 / B;
      else row.status = `sampling over budget (${(s.warmMs / 1000).toFixed(1)} s per step)`;
    }
    const trainS = o.rate?.trainOverForward ? (o.rate.trainOverForward * f.ms) / 1000 : null;
    if (o.train && trainS !== null && trainS * calls > o.budgetS) {
      row.status = `training over budget: a step predicted at ${trainS.toFixed(0)} s (${o.rate!.trainOverForward!.toFixed(1)}× the forward, as measured on smaller configs), ${calls} of them exceed --budget-s ${o.budgetS}`;
    } else if (o.train) {
      m.train();
      const opt = new AdamW(m.parameters(), { lr: 1e-4, weightDecay: 0 });
      const diffusion = new GaussianDiffusion({ learnSigma: c.learnSigma });
      const gen = new Generator(3);
      const step = () => { const l = trainingLoss(m, diffusion, { x0: x, y }, gen).lossMean; backward(l); opt.step(); opt.zeroGrad(); };
      gpu().pool.resetPeak();
      const s = await timeCalls(step, o.reps, budgetMs);
      row.peak_mib = memory().peakLiveBytes / 2 ** 20;
      opt.dispose();
      if (s.ms === null) row.status = `training over budget: one step takes ${(s.warmMs / 1000).toFixed(1)} s (compilation included)`;
      else { row.train_step_ms = s.ms; row.train_images_per_s = (1000 * B) / s.ms; }
    }
  } catch (e) {
    row.status = `cannot run here: ${(e as Error).message.split('\n')[0]}`;
  } finally {
    for (const h of held) h.dispose();
    model?.dispose();
    await gpu().sync('bench').catch(() => undefined);
  }
  return row;
}

// ------------------------------------------------------------------------------------------ dispatch cost
export interface DispatchCost { engine_us: number; raw_new_bind_group_us: number; raw_reused_bind_group_us: number; dit_s2_train_step_dispatches: number; dit_s2_sampling_step_dispatches: number }

/**
 * µs per dispatch: N tiny elementwise ops through the engine (`map`, as every op records), beside a raw Dawn
 * loop on the same pipeline and buffers with a new bind group per dispatch and with one reused; then the
 * dispatches of one DiT-S/2 training step and one sampling step (with guidance) at batch `batch`.
 */
export async function dispatchCost(n = 4000, batch = 8): Promise<DispatchCost> {
  const g = gpu();
  const a = keep(randn([64], 1)), out = keep(Tensor.empty([64]));
  const engineLoop = () => { for (let i = 0; i < n; i++) map('x * p', { x: a }, { p: 1.0001, out }); };
  engineLoop();
  await g.sync('bench');
  let t0 = performance.now();
  engineLoop();
  g.flush();
  const engineUs = ((performance.now() - t0) * 1000) / n;
  await g.sync('bench');
  // The raw loop: the pipeline the engine compiled for that op, bound by hand, submitted every 256 dispatches
  // as the engine does.
  const code = g.lastCode;
  const { pipeline, layout } = g.pipeline(code, 'raw');
  const uniform = g.device.createBuffer({ size: 256, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  g.device.queue.writeBuffer(uniform, 0, new Uint32Array(64));
  const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: uniform, offset: 0, size: 256 } }, { binding: 1, resource: { buffer: a.buffer, size: 256 } }, { binding: 2, resource: { buffer: out.buffer, size: 256 } }];
  const raw = (reuse: boolean) => {
    const shared = reuse ? g.device.createBindGroup({ layout, entries }) : null;
    for (let i0 = 0; i0 < n; i0 += 256) {
      const enc = g.device.createCommandEncoder();
      const pass = enc.beginComputePass();
      for (let i = i0; i < Math.min(n, i0 + 256); i++) {
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, shared ?? g.device.createBindGroup({ layout, entries }), [0]);
        pass.dispatchWorkgroups(1);
      }
      pass.end();
      g.device.queue.submit([enc.finish()]);
    }
  };
  const timeRaw = async (reuse: boolean) => {
    raw(reuse);
    await g.device.queue.onSubmittedWorkDone();
    const t = performance.now();
    raw(reuse);
    const us = ((performance.now() - t) * 1000) / n;
    await g.device.queue.onSubmittedWorkDone();
    return us;
  };
  const rawNew = await timeRaw(false), rawReused = await timeRaw(true);
  uniform.destroy();
  a.dispose(); out.dispose();
  // Dispatches of one DiT-S/2 training step and one guided sampling step.
  const m = new DiT('DiT-S/2', {}, 0);
  const c = m.config;
  const x = keep(randn([batch, c.inChannels, c.inputSize, c.inputSize], 1));
  const y = Array.from({ length: batch }, (_, i) => i);
  const opt = new AdamW(m.parameters(), { lr: 1e-4, weightDecay: 0 });
  const diffusion = new GaussianDiffusion({});
  const gen = new Generator(1);
  const trainStep = () => scope(() => { const l = trainingLoss(m, diffusion, { x0: x, y }, gen).lossMean; backward(l); opt.step(); opt.zeroGrad(); });
  m.train();
  trainStep();
  await g.sync('bench');
  let d0 = g.stats.dispatches;
  trainStep();
  const trainDispatches = g.stats.dispatches - d0;
  await g.sync('bench');
  m.eval();
  const x2 = keep(randn([2 * batch, c.inChannels, c.inputSize, c.inputSize], 2)), noise = keep(randn(x2.shape, 3));
  const tt = new Array(2 * batch).fill(500), yy = [...y, ...new Array(batch).fill(c.numClasses)];
  d0 = g.stats.dispatches;
  scope(() => noGrad(() => diffusion.pSample(m.forwardWithCfg(x2, tt, yy, 4), x2, tt, noise)));
  const sampleDispatches = g.stats.dispatches - d0;
  await g.sync('bench');
  opt.dispose(); m.dispose(); x.dispose(); x2.dispose(); noise.dispose();
  return { engine_us: engineUs, raw_new_bind_group_us: rawNew, raw_reused_bind_group_us: rawReused, dit_s2_train_step_dispatches: trainDispatches, dit_s2_sampling_step_dispatches: sampleDispatches };
}
