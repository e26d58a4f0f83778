// Latent caches whose right samples are known: class k is a fixed random pattern plus N(0, std²) noise.
import { Safetensors, serializeSafetensors } from '../engine/safetensors.js';
import { writeFileAtomic } from '../engine/node.js';
import { LatentSet } from '../dit/train.js';
import { f32ToF16 } from '../engine/half.js';
import { randArray } from './helpers.js';

/**
 * The cache's safetensors chunks: `count` latents of `shape`, labels cycling over the patterns; with
 * `teacherDim`, an alignment teacher's features too (one fixed random F-vector per latent pixel and class).
 */
export function patternCache(patterns: Float32Array[], shape: [number, number, number], count: number, std: number, classes = patterns.map((_, k) => `p${k}`), meta: Record<string, string> = {}, teacherDim = 0): Uint8Array[] {
  const per = shape[0] * shape[1] * shape[2], K = patterns.length, T = shape[1] * shape[2];
  const mean = new Float32Array(count * per), logvar = new Float32Array(count * per).fill(Math.log(std * std)), labels = new Int32Array(count);
  for (let i = 0; i < count; i++) { labels[i] = i % K; mean.set(patterns[i % K], i * per); }
  const features = patterns.map((_, k) => f32ToF16(randArray(T * teacherDim, 900 + k)));
  const teacher = new Uint16Array(count * T * teacherDim);
  if (teacherDim) for (let i = 0; i < count; i++) teacher.set(features[i % K], i * T * teacherDim);
  return serializeSafetensors({
    mean: { shape: [count, ...shape], data: mean }, logvar: { shape: [count, ...shape], data: logvar }, labels: { shape: [count], data: labels },
    ...(teacherDim ? { teacher: { shape: [count, T, teacherDim], data: teacher } } : {}),
  }, { scale_factor: '1', classes: JSON.stringify(classes), ...meta });
}

/** The same cache in memory. */
export function patternLatents(patterns: Float32Array[], shape: [number, number, number], count: number, std: number): LatentSet {
  const chunks = patternCache(patterns, shape, count, std);
  const bytes = new Uint8Array(chunks.reduce((a, b) => a + b.byteLength, 0));
  let o = 0;
  for (const c of chunks) { bytes.set(c, o); o += c.byteLength; }
  return new LatentSet(new Safetensors(bytes, 'patterns'));
}

/** The same cache written to `file`. */
export async function writePatternLatents(file: string, patterns: Float32Array[], shape: [number, number, number], count: number, std: number, classes?: string[], meta?: Record<string, string>, teacherDim = 0): Promise<void> {
  await writeFileAtomic(file, patternCache(patterns, shape, count, std, classes, meta, teacherDim));
}
