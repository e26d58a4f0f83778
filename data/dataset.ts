// Image datasets as uint8 CHW arrays: the built-in synthetic set (cached on disk in the CIFAR-10 binary
// format), real CIFAR-10 binaries, folders of PNGs per class; batches as [-1, 1] tensors with random
// horizontal flips; a PNG grid of samples per class.
import { Tensor } from '../engine/tensor.js';
import { generateSynthetic } from './synthetic.js';
import { toImage, grid, writePng, readPng, type Image } from './png.js';

export interface ImageDataset {
  images: Uint8Array; // count × C × H × W
  labels: Uint8Array;
  classes: string[];
  channels: number;
  height: number;
  width: number;
  count: number;
}

export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const RECORD = 1 + 3072;

/** Parses CIFAR-10 binary batches (1 label byte + 3072 CHW bytes per record). */
export function parseCifar10(files: { name: string; bytes: Uint8Array }[], classes = CIFAR10_CLASSES): ImageDataset {
  let count = 0;
  for (const f of files) {
    if (f.bytes.byteLength === 0 || f.bytes.byteLength % RECORD !== 0) {
      throw new Error(`${f.name}: ${f.bytes.byteLength} bytes is not a whole number of CIFAR-10 records (${RECORD} bytes each: 1 label + 32×32×3)`);
    }
    count += f.bytes.byteLength / RECORD;
  }
  const images = new Uint8Array(count * 3072), labels = new Uint8Array(count);
  let i = 0;
  for (const f of files) {
    for (let o = 0; o < f.bytes.byteLength; o += RECORD, i++) {
      const l = f.bytes[o];
      if (l >= classes.length) throw new Error(`${f.name}: record ${o / RECORD} has label ${l}, outside the ${classes.length} classes`);
      labels[i] = l;
      images.set(f.bytes.subarray(o + 1, o + RECORD), i * 3072);
    }
  }
  return { images, labels, classes, channels: 3, height: 32, width: 32, count };
}

/** Serialises a 32×32×3 dataset in the CIFAR-10 binary format. */
export function toCifar10Bytes(d: ImageDataset): Uint8Array {
  const out = new Uint8Array(d.count * RECORD);
  for (let i = 0; i < d.count; i++) { out[i * RECORD] = d.labels[i]; out.set(d.images.subarray(i * 3072, (i + 1) * 3072), i * RECORD + 1); }
  return out;
}

/** Reads CIFAR-10 binaries from a folder (data_batch_1..5.bin for train, test_batch.bin for test). */
export async function readCifar10(dir: string, split: 'train' | 'test'): Promise<ImageDataset> {
  const { readFileBytes, joinPath } = await import('../engine/node.js');
  const names = split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
  const files = [];
  for (const n of names) files.push({ name: joinPath(dir, n), bytes: await readFileBytes(joinPath(dir, n)) });
  return parseCifar10(files);
}

/** A folder with one sub-folder of same-size PNGs per class (sorted class names = labels). */
export async function readPngFolder(dir: string): Promise<ImageDataset> {
  const { promises: fs } = await import('node:fs');
  const path = await import('node:path');
  const classes = (await fs.readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  if (!classes.length) throw new Error(`${dir}: no class sub-folders`);
  const imgs: { img: Image; label: number; file: string }[] = [];
  for (const [label, c] of classes.entries()) {
    for (const f of (await fs.readdir(path.join(dir, c))).filter((f) => f.toLowerCase().endsWith('.png')).sort()) {
      imgs.push({ img: await readPng(path.join(dir, c, f)), label, file: path.join(dir, c, f) });
    }
  }
  if (!imgs.length) throw new Error(`${dir}: no PNG files in ${classes.join(', ')}`);
  const { width: W, height: H } = imgs[0].img;
  const images = new Uint8Array(imgs.length * 3 * H * W), labels = new Uint8Array(imgs.length);
  imgs.forEach(({ img, label, file }, i) => {
    if (img.width !== W || img.height !== H) throw new Error(`${file}: ${img.width}×${img.height}, but the dataset's images are ${W}×${H}`);
    labels[i] = label;
    for (let p = 0; p < H * W; p++) for (let c = 0; c < 3; c++) images[i * 3 * H * W + c * H * W + p] = img.rgba[p * 4 + c];
  });
  return { images, labels, classes, channels: 3, height: H, width: W, count: imgs.length };
}

/**
 * The built-in dataset (default 50,000 train / 10,000 test), generated once and cached as CIFAR-10-format
 * binaries under `cacheDir` (.cache/data by default).
 */
export async function syntheticDataset(split: 'train' | 'test', opts: { seed?: number; count?: number; cacheDir?: string; onProgress?: (m: string) => void } = {}): Promise<ImageDataset> {
  const seed = opts.seed ?? 0, count = opts.count ?? (split === 'train' ? 50000 : 10000);
  const node = await import('../engine/node.js');
  const { existsSync } = await import('node:fs');
  const file = node.joinPath(opts.cacheDir ?? '.cache/data', `synthetic-s${seed}-${split}-${count}.bin`);
  const { SYNTHETIC_CLASSES } = await import('./synthetic.js');
  if (existsSync(file)) return parseCifar10([{ name: file, bytes: await node.readFileBytes(file) }], [...SYNTHETIC_CLASSES]);
  const t0 = performance.now();
  const d = generateSynthetic(seed, split === 'train' ? 0 : 1, count, (n) => opts.onProgress?.(`generating ${split}: ${n}/${count}`));
  await node.writeFileAtomic(file, [toCifar10Bytes(d)]);
  opts.onProgress?.(`generated ${count} ${split} images in ${((performance.now() - t0) / 1000).toFixed(1)} s → ${file}`);
  return d;
}

/** Images `idx` as a [B, C, H, W] tensor in [−1, 1] (x/127.5 − 1), optionally flipped left-right at random. */
export function imageBatch(d: ImageDataset, idx: number[], flip: (() => number) | null = null): Tensor {
  const { channels: C, height: H, width: W } = d;
  const per = C * H * W;
  const out = new Float32Array(idx.length * per);
  idx.forEach((i, b) => {
    const mirror = flip ? flip() < 0.5 : false;
    const src = d.images.subarray(i * per, (i + 1) * per);
    for (let c = 0; c < C; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      out[b * per + (c * H + y) * W + x] = src[(c * H + y) * W + (mirror ? W - 1 - x : x)] / 127.5 - 1;
    }
  });
  return Tensor.from(out, [idx.length, C, H, W]);
}

/** A PNG grid with `perClass` samples of each class in a row. */
export async function writeClassGrid(d: ImageDataset, file: string, perClass = 10, scale = 2): Promise<void> {
  const per = d.channels * d.height * d.width;
  const rows: Image[] = [];
  for (let c = 0; c < d.classes.length; c++) {
    const idx: number[] = [];
    for (let i = 0; i < d.count && idx.length < perClass; i++) if (d.labels[i] === c) idx.push(i);
    for (const i of idx) rows.push(toImage(Float32Array.from(d.images.subarray(i * per, (i + 1) * per), (v) => v / 127.5 - 1), d.channels, d.height, d.width));
    for (let k = idx.length; k < perClass; k++) rows.push(toImage(new Float32Array(per).fill(1), d.channels, d.height, d.width));
  }
  await writePng(file, grid(rows, perClass, scale));
}
