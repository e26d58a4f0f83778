// Latent caches whose right samples are known: class k is a fixed random pattern plus N(0, std²) noise.
import { Safetensors, serializeSafetensors } from '../engine/safetensors.js';
import { writeFileAtomic } from '../engine/node.js';
import { LatentSet } from '../dit/train.js';

/** The cache's safetensors chunks: `count` latents of `shape`, labels cycling over the patterns. */
export function patternCache(patterns: Float32Array[], shape: [number, number, number], count: number, std: number, classes = patterns.map((_, k) => `p${k}`), meta: Record<string, string> = {}): Uint8Array[] {
  const per = shape[0] * shape[1] * shape[2], K = patterns.length;
  const mean = new Float32Array(count * per), logvar = new Float32Array(count * per).fill(Math.log(std * std)), labels = new Int32Array(count);
  for (let i = 0; i < count; i++) { labels[i] = i % K; mean.set(patterns[i % K], i * per); }
  return serializeSafetensors({ mean: { shape: [count, ...shape], data: mean }, logvar: { shape: [count, ...shape], data: logvar }, labels: { shape: [count], data: labels } },
    { scale_factor: '1', classes: JSON.stringify(classes), ...meta });
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
export async function writePatternLatents(file: string, patterns: Float32Array[], shape: [number, number, number], count: number, std: number, classes?: string[], meta?: Record<string, string>): Promise<void> {
  await writeFileAtomic(file, patternCache(patterns, shape, count, std, classes, meta));
}
