// The quick preset's training step (the main job on CPU adapters) on synthetic latents: what `dit bench`
// and `bench/levers.ts` time beside PyTorch on the CPU. The whole step as `dit train` runs it: batch
// sampling and upload, loss with Min-SNR, backward, AdamW, the divergence check and the EMA.
import { gpu } from '../engine/device.js';
import { Safetensors, serializeSafetensors } from '../engine/safetensors.js';
import { DiT } from '../dit/model.js';
import { ditConfig, type DiTConfig } from '../dit/config.js';
import { RECIPES } from '../dit/recipes.js';
import { DiTTrainer, LatentSet } from '../dit/train.js';

/** The quick recipe's model on 8×8×4 latents with 10 classes. */
export function quickConfig(): DiTConfig {
  const { conditioning, ...model } = RECIPES.quick.model;
  return ditConfig(undefined, { ...model, conditioning, inputSize: 8, inChannels: 4, numClasses: 10, learnSigma: false });
}

/** `count` synthetic latents [4, 8, 8] with 10 classes (a fixed pattern per class plus noise). */
export function syntheticLatents(count = 256): LatentSet {
  const per = 4 * 8 * 8;
  const mean = new Float32Array(count * per), logvar = new Float32Array(count * per).fill(Math.log(0.01)), labels = new Int32Array(count);
  let s = 1;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const patterns = Array.from({ length: 10 }, () => Float32Array.from({ length: per }, rnd));
  for (let i = 0; i < count; i++) { labels[i] = i % 10; mean.set(patterns[i % 10], i * per); }
  const chunks = serializeSafetensors({ mean: { shape: [count, 4, 8, 8], data: mean }, logvar: { shape: [count, 4, 8, 8], data: logvar }, labels: { shape: [count], data: labels } },
    { scale_factor: '1', classes: JSON.stringify(Array.from({ length: 10 }, (_, k) => `c${k}`)) });
  const bytes = new Uint8Array(chunks.reduce((a, c) => a + c.byteLength, 0));
  let o = 0;
  for (const c of chunks) { bytes.set(c, o); o += c.byteLength; }
  return new LatentSet(new Safetensors(bytes, 'synthetic'));
}

/**
 * A trainer of the quick recipe's DiT step (its batch unless `batch` is given): flow matching, AdamW, EMA; the
 * teacher alignment is left out (these latents carry no teacher features; it adds one small conv per step).
 * Dispose with `disposeTrainer`.
 */
export function quickTrainer(batch?: number): DiTTrainer {
  const r = RECIPES.quick;
  return new DiTTrainer(new DiT(quickConfig(), {}, 0), r.objective, syntheticLatents(), { ...r.optim, ...(batch ? { batch } : {}), seed: 0 });
}

export function disposeTrainer(t: DiTTrainer): void {
  t.opt.dispose();
  t.ema.dispose();
  t.model.dispose();
}

/** CPU ms this process has used so far (every thread: lavapipe runs the kernels on its own threads). */
export const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

/**
 * Wall and CPU ms per quick-preset training step: `warmup` steps (pipelines compile), then `reps` samples of
 * `k` steps each, every sample ended by a full GPU sync. On a shared machine the CPU time is the steadier
 * measure of the work; on an idle one the wall time is what a user waits.
 */
export async function timeQuickStep(t: DiTTrainer, reps = 5, k = 4, warmup = 3): Promise<{ wall: number[]; cpu: number[] }> {
  const g = gpu();
  for (let i = 0; i < warmup; i++) t.trainStep();
  await g.sync('bench');
  const wall: number[] = [], cpu: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now(), c0 = cpuMs();
    for (let i = 0; i < k; i++) t.trainStep();
    await g.sync('bench');
    wall.push((performance.now() - t0) / k);
    cpu.push((cpuMs() - c0) / k);
  }
  return { wall, cpu };
}

/** GPU ms per kernel label (the family: matmul, adamw, layernorm, …) and per label with its shape, from one profiled step. */
export interface StepProfile { wallMs: number; gpuMs: number; dispatches: number; families: { name: string; ms: number; count: number }[]; kernels: { name: string; ms: number; count: number }[] }

/** One quick-preset training step with timestamp queries (one pass per dispatch), after `warmup` unprofiled steps. */
export async function profileQuickStep(t: DiTTrainer, warmup = 3): Promise<StepProfile> {
  const g = gpu();
  for (let i = 0; i < warmup; i++) t.trainStep();
  await g.sync('bench');
  g.profile.clear();
  const d0 = g.stats.dispatches;
  g.setProfiling(true);
  const t0 = performance.now();
  t.trainStep();
  await g.sync('bench');
  const wallMs = performance.now() - t0;
  g.setProfiling(false);
  await g.sync('bench');
  const kernels = [...g.profile].map(([name, v]) => ({ name, ms: v.ms, count: v.count })).sort((a, b) => b.ms - a.ms);
  const fam = new Map<string, { ms: number; count: number }>();
  for (const k of kernels) {
    const f = k.name.split(' ')[0];
    const e = fam.get(f) ?? { ms: 0, count: 0 };
    e.ms += k.ms; e.count += k.count;
    fam.set(f, e);
  }
  const families = [...fam].map(([name, v]) => ({ name, ...v })).sort((a, b) => b.ms - a.ms);
  return { wallMs, gpuMs: kernels.reduce((s, k) => s + k.ms, 0), dispatches: g.stats.dispatches - d0, families, kernels };
}
