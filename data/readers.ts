// Datasets from files, Node side: the built-in synthetic set (generated once, cached in the CIFAR-10 binary
// format), CIFAR-10 binaries, Fashion-MNIST IDX files (Debian's dataset-fashion-mnist), folders of PNGs per
// class; and the one parser of `--data` specs. Parsing the formats works on bytes and names the file and
// the problem; only the file access is Node-only.
import { type ImageDataset } from './dataset.js';
import { generateSynthetic, SYNTHETIC_CLASSES } from './synthetic.js';
import { readPng, type Image } from './png.js';
import { nodeHelpers, nodePackage } from '../engine/runtime.js';
import { CheckpointError } from '../engine/errors.js';

export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const RECORD = 1 + 3072;

/** Parses CIFAR-10 binary batches (1 label byte + 3072 CHW bytes per record). */
export function parseCifar10(files: { name: string; bytes: Uint8Array }[], classes = CIFAR10_CLASSES): ImageDataset {
  let count = 0;
  for (const f of files) {
    if (f.bytes.byteLength === 0 || f.bytes.byteLength % RECORD !== 0) {
      throw new CheckpointError(`${f.name}: ${f.bytes.byteLength} bytes is not a whole number of CIFAR-10 records (${RECORD} bytes each: 1 label + 32×32×3)`, { file: f.name });
    }
    count += f.bytes.byteLength / RECORD;
  }
  const images = new Uint8Array(count * 3072), labels = new Uint8Array(count);
  let i = 0;
  for (const f of files) {
    for (let o = 0; o < f.bytes.byteLength; o += RECORD, i++) {
      const l = f.bytes[o];
      if (l >= classes.length) throw new CheckpointError(`${f.name}: record ${o / RECORD} has label ${l}, outside the ${classes.length} classes`, { file: f.name });
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
  const { readFileBytes, joinPath } = await nodeHelpers('readCifar10');
  const names = split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
  const files = [];
  for (const n of names) files.push({ name: joinPath(dir, n), bytes: await readFileBytes(joinPath(dir, n)) });
  return parseCifar10(files);
}

/** A folder with one sub-folder of same-size PNGs per class (sorted class names = labels). */
export async function readPngFolder(dir: string, channels: 1 | 3 = 3): Promise<ImageDataset> {
  const { promises: fs } = await nodePackage<typeof import('node:fs')>('node:fs', 'readPngFolder');
  const path = await nodePackage<typeof import('node:path')>('node:path', 'readPngFolder');
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch((e: Error) => { throw new CheckpointError(`${dir}: cannot read the folder (${e.message})`, { file: dir, cause: e }); });
  const classes = entries.filter((d) => d.isDirectory()).map((d) => d.name).sort();
  if (!classes.length) throw new CheckpointError(`${dir}: no class sub-folders`, { file: dir });
  const imgs: { img: Image; label: number; file: string }[] = [];
  for (const [label, c] of classes.entries()) {
    for (const f of (await fs.readdir(path.join(dir, c))).filter((f) => f.toLowerCase().endsWith('.png')).sort()) {
      imgs.push({ img: await readPng(path.join(dir, c, f)), label, file: path.join(dir, c, f) });
    }
  }
  if (!imgs.length) throw new CheckpointError(`${dir}: no PNG files in ${classes.join(', ')}`, { file: dir });
  const { width: W, height: H } = imgs[0].img;
  const C = channels;
  const images = new Uint8Array(imgs.length * C * H * W), labels = new Uint8Array(imgs.length);
  imgs.forEach(({ img, label, file }, i) => {
    if (img.width !== W || img.height !== H) throw new CheckpointError(`${file}: ${img.width}×${img.height}, but the dataset's images are ${W}×${H}`, { file });
    labels[i] = label;
    // Grey: the red channel (grey PNGs, and the grey pictures this project writes, have R = G = B).
    for (let p = 0; p < H * W; p++) for (let c = 0; c < C; c++) images[i * C * H * W + c * H * W + p] = img.rgba[p * 4 + c];
  });
  return { images, labels, classes, channels: C, height: H, width: W, count: imgs.length };
}

/**
 * The built-in dataset (default 50,000 train / 10,000 test), generated once and cached as CIFAR-10-format
 * binaries under `cacheDir` (.cache/data by default).
 */
export async function syntheticDataset(split: 'train' | 'test', opts: { seed?: number; count?: number; cacheDir?: string; onProgress?: (m: string) => void } = {}): Promise<ImageDataset> {
  const seed = opts.seed ?? 0, count = opts.count ?? (split === 'train' ? 50000 : 10000);
  const node = await nodeHelpers('syntheticDataset');
  const { existsSync } = await nodePackage<typeof import('node:fs')>('node:fs', 'syntheticDataset');
  const file = node.joinPath(opts.cacheDir ?? '.cache/data', `synthetic-s${seed}-${split}-${count}.bin`);
  if (existsSync(file)) return parseCifar10([{ name: file, bytes: await node.readFileBytes(file) }], [...SYNTHETIC_CLASSES]);
  const t0 = performance.now();
  const d = generateSynthetic(seed, split === 'train' ? 0 : 1, count, (n) => opts.onProgress?.(`generating ${split}: ${n}/${count}`));
  await node.writeFileAtomic(file, [toCifar10Bytes(d)]);
  opts.onProgress?.(`generated ${count} ${split} images in ${((performance.now() - t0) / 1000).toFixed(1)} s → ${file}`);
  return d;
}


// ------------------------------------------------------------------------------------------ Fashion-MNIST
export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
/** Where Debian's dataset-fashion-mnist package installs the four IDX files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** An IDX file of unsigned bytes (magic 0x0000080N, N big-endian u32 dimensions, then the data). */
export function parseIdx(bytes: Uint8Array, name: string, dims: number): { shape: number[]; data: Uint8Array } {
  if (bytes.byteLength < 4 + 4 * dims) throw new CheckpointError(`${name}: ${bytes.byteLength} bytes is too short for an IDX header with ${dims} dimensions`, { file: name });
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(0, false);
  if (magic !== 0x800 + dims) {
    throw new CheckpointError(`${name}: not an IDX file of unsigned bytes with ${dims} dimension${dims > 1 ? 's' : ''} (magic 0x${magic.toString(16).padStart(8, '0')}, expected 0x${(0x800 + dims).toString(16).padStart(8, '0')})`, { file: name });
  }
  const shape = Array.from({ length: dims }, (_, i) => dv.getUint32(4 + 4 * i, false));
  const n = shape.reduce((a, b) => a * b, 1), start = 4 + 4 * dims;
  if (bytes.byteLength - start < n) throw new CheckpointError(`${name}: truncated: the header promises ${shape.join('×')} = ${n} bytes of data, the file holds ${bytes.byteLength - start}`, { file: name });
  return { shape, data: bytes.subarray(start, start + n) };
}

/** Fashion-MNIST from IDX images and labels: 28×28 grey, zero-padded to 32×32 (the VAE's 4× downsampling). */
export function fashionMnistFromIdx(images: { name: string; bytes: Uint8Array }, labels: { name: string; bytes: Uint8Array }): ImageDataset {
  const im = parseIdx(images.bytes, images.name, 3), lb = parseIdx(labels.bytes, labels.name, 1);
  const [n, h, w] = im.shape;
  if (lb.shape[0] !== n) throw new CheckpointError(`${labels.name}: ${lb.shape[0]} labels for the ${n} images of ${images.name}`, { file: labels.name });
  if (h > 32 || w > 32) throw new CheckpointError(`${images.name}: ${h}×${w} images, expected 28×28`, { file: images.name });
  const S = 32, py = (S - h) >> 1, px = (S - w) >> 1;
  const out = new Uint8Array(n * S * S);
  for (let i = 0; i < n; i++) for (let y = 0; y < h; y++) out.set(im.data.subarray((i * h + y) * w, (i * h + y + 1) * w), i * S * S + (y + py) * S + px);
  for (let i = 0; i < n; i++) if (lb.data[i] >= 10) throw new CheckpointError(`${labels.name}: label ${lb.data[i]} of image ${i} is outside the 10 classes`, { file: labels.name });
  return { images: out, labels: Uint8Array.from(lb.data), classes: [...FASHION_MNIST_CLASSES], channels: 1, height: S, width: S, count: n };
}

/** Reads `dir`/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (gzip or not). */
export async function readFashionMnist(dir: string, split: 'train' | 'test'): Promise<ImageDataset> {
  const { existsSync } = await nodePackage<typeof import('node:fs')>('node:fs', 'readFashionMnist');
  const { gunzipSync } = await nodePackage<typeof import('node:zlib')>('node:zlib', 'readFashionMnist');
  const { readFileBytes, joinPath } = await nodeHelpers('readFashionMnist');
  const read = async (stem: string) => {
    for (const name of [`${stem}.gz`, stem]) {
      const file = joinPath(dir, name);
      if (!existsSync(file)) continue;
      const raw = await readFileBytes(file);
      let bytes = raw;
      if (name.endsWith('.gz')) {
        try { bytes = new Uint8Array(gunzipSync(raw)); } catch (e) { throw new CheckpointError(`${file}: not a valid gzip file (${(e as Error).message})`, { file }); }
      }
      return { name: file, bytes };
    }
    throw new CheckpointError(`${joinPath(dir, stem)}[.gz]: no such file (Fashion-MNIST: apt-get install dataset-fashion-mnist, or give --data fashion-mnist:DIR)`, { file: dir });
  };
  const p = split === 'train' ? 'train' : 't10k';
  return fashionMnistFromIdx(await read(`${p}-images-idx3-ubyte`), await read(`${p}-labels-idx1-ubyte`));
}

// ------------------------------------------------------------------------------------------ --data specs
export type DataSpec = { kind: 'synthetic' } | { kind: 'fashion-mnist'; dir: string } | { kind: 'cifar10'; dir: string } | { kind: 'folder'; dir: string };

export const DATA_SPEC_HELP = 'synthetic (built in), fashion-mnist[:DIR], cifar10:DIR or folder:DIR';

/** Parses a `--data` value; throws naming what is allowed. */
export function parseDataSpec(spec: string): DataSpec {
  if (spec === 'synthetic') return { kind: 'synthetic' };
  if (spec === 'fashion-mnist') return { kind: 'fashion-mnist', dir: FASHION_MNIST_DIR };
  const m = /^(fashion-mnist|cifar10|folder):(.+)$/.exec(spec);
  if (m) return { kind: m[1] as 'fashion-mnist' | 'cifar10' | 'folder', dir: m[2] };
  throw new Error(`'${spec}' is not a dataset: use ${DATA_SPEC_HELP}`);
}

/** The short name of a spec, for file names and summaries ('synthetic', 'fashion-mnist', …). */
export function dataName(spec: DataSpec): string { return spec.kind; }

/** Loads one split of a dataset. */
export async function loadDataset(spec: DataSpec, split: 'train' | 'test', opts: { onProgress?: (m: string) => void } = {}): Promise<ImageDataset> {
  switch (spec.kind) {
    case 'synthetic': return syntheticDataset(split, opts);
    case 'fashion-mnist': return readFashionMnist(spec.dir, split);
    case 'cifar10': return readCifar10(spec.dir, split);
    case 'folder': return readPngFolder(spec.dir);
  }
}
