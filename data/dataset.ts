// Image datasets as uint8 CHW arrays (any channel count: 3 for RGB, 1 for grey): batches as [-1, 1]
// tensors with random horizontal flips, subsets, a fingerprint of the contents, PNG grids and per-class PNG
// folders (samples are datasets too: `dit sample --out-dir`). Reading them from files is data/readers.ts.
import { Tensor } from '../engine/tensor.js';
import { toImage, grid, writePng, type Image } from './png.js';
import { nodeHelpers, nodePackage } from '../engine/runtime.js';

export interface ImageDataset {
  images: Uint8Array; // count × C × H × W
  labels: Uint8Array;
  classes: string[];
  channels: number;
  height: number;
  width: number;
  count: number;
}

/** The first `n` images (a view, no copy). */
export function subset(d: ImageDataset, n: number): ImageDataset {
  const per = d.channels * d.height * d.width;
  const k = Math.min(n, d.count);
  return { ...d, count: k, images: d.images.subarray(0, k * per), labels: d.labels.subarray(0, k) };
}

/**
 * A 64-bit FNV-1a digest (16 hex digits) of the images, labels, shape and class names: what a cache of
 * anything derived from a dataset (a classifier trained on it) is keyed by.
 */
export function fingerprint(d: ImageDataset): string {
  let h1 = 0x811c9dc5, h2 = 0x01000193 ^ d.count;
  const mix = (bytes: Uint8Array) => {
    for (let i = 0; i < bytes.length; i++) {
      h1 = Math.imul(h1 ^ bytes[i], 0x01000193) >>> 0;
      h2 = Math.imul(h2 ^ bytes[i] ^ (h1 >>> 16), 0x01000193) >>> 0;
    }
  };
  mix(d.images);
  mix(d.labels);
  mix(new TextEncoder().encode(JSON.stringify([d.channels, d.height, d.width, d.count, d.classes])));
  return h1.toString(16).padStart(8, '0') + h2.toString(16).padStart(8, '0');
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

/** Image `i` of a dataset, for a picture. */
export function imageOf(d: ImageDataset, i: number): Image {
  const per = d.channels * d.height * d.width;
  return toImage(Float32Array.from(d.images.subarray(i * per, (i + 1) * per), (v) => v / 127.5 - 1), d.channels, d.height, d.width);
}

/** Every image of a dataset in a grid of `cols` columns, scaled ×`scale`. */
export function datasetGrid(d: ImageDataset, cols: number, scale: number): Image {
  return grid(Array.from({ length: d.count }, (_, i) => imageOf(d, i)), cols, scale);
}

/** A PNG grid with `perClass` samples of each class in a row. */
export async function writeClassGrid(d: ImageDataset, file: string, perClass = 10, scale = 2): Promise<void> {
  const per = d.channels * d.height * d.width;
  const rows: Image[] = [];
  for (let c = 0; c < d.classes.length; c++) {
    const idx: number[] = [];
    for (let i = 0; i < d.count && idx.length < perClass; i++) if (d.labels[i] === c) idx.push(i);
    for (const i of idx) rows.push(imageOf(d, i));
    for (let k = idx.length; k < perClass; k++) rows.push(toImage(new Float32Array(per).fill(1), d.channels, d.height, d.width));
  }
  await writePng(file, grid(rows, perClass, scale));
}

/** Folder name of class k: two-digit index, then the name with anything but letters, digits, '-' and '_' as '-'. */
export function classFolder(k: number, name: string): string {
  return `${String(k).padStart(2, '0')}-${name.replace(/[^A-Za-z0-9_-]+/g, '-')}`;
}

/** Writes `DIR/<class folder>/<index>.png` for every image, a folder for every class (the layout the PNG-folder reader and FID tools read; Node). */
export async function writeClassFolders(d: ImageDataset, dir: string): Promise<void> {
  const [{ promises: fs }, { joinPath }] = await Promise.all([nodePackage<typeof import('node:fs')>('node:fs', 'writeClassFolders'), nodeHelpers('writeClassFolders')]);
  const next = new Array(d.classes.length).fill(0);
  await Promise.all(d.classes.map((c, k) => fs.mkdir(joinPath(dir, classFolder(k, c)), { recursive: true })));
  for (let i = 0; i < d.count; i++) {
    const k = d.labels[i];
    await writePng(joinPath(dir, classFolder(k, d.classes[k]), `${String(next[k]++).padStart(4, '0')}.png`), imageOf(d, i));
  }
}
