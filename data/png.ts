// Pictures: image grids from tensors in [-1, 1] (or latents, normalised per image), written as PNG (Node).
import { nodeHelpers, nodePackage } from '../engine/runtime.js';
import { CheckpointError } from '../engine/errors.js';

export interface Image { width: number; height: number; rgba: Uint8Array }

/** One image from CHW float data: 3 channels in [-1, 1] → RGB; other channel counts → first 3 (or gray), min–max scaled. */
export function toImage(chw: ArrayLike<number>, C: number, H: number, W: number, range: 'signed' | 'minmax' = 'signed'): Image {
  const rgba = new Uint8Array(H * W * 4);
  let lo = -1, hi = 1;
  if (range === 'minmax') {
    lo = Infinity; hi = -Infinity;
    for (let i = 0; i < Math.min(C, 3) * H * W; i++) { lo = Math.min(lo, chw[i]); hi = Math.max(hi, chw[i]); }
    if (hi <= lo) hi = lo + 1;
  }
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const o = (y * W + x) * 4;
    for (let c = 0; c < 3; c++) {
      const v = chw[(Math.min(c, C - 1) * H + y) * W + x];
      // DiT's uint8 conversion: clamp(127.5·x + 128) for [-1, 1] images.
      rgba[o + c] = range === 'signed' ? Math.max(0, Math.min(255, Math.floor(127.5 * v + 128))) : Math.round((255 * (v - lo)) / (hi - lo));
    }
    rgba[o + 3] = 255;
  }
  return { width: W, height: H, rgba };
}

/** Tiles images into a grid with a 2-pixel gap, `scale`× nearest upscaling. */
export function grid(images: Image[], cols: number, scale = 1, gap = 2): Image {
  const w = images[0].width * scale, h = images[0].height * scale;
  const rows = Math.ceil(images.length / cols);
  const W = cols * w + (cols + 1) * gap, H = rows * h + (rows + 1) * gap;
  const rgba = new Uint8Array(W * H * 4).fill(255);
  images.forEach((im, k) => {
    const ox = gap + (k % cols) * (w + gap), oy = gap + Math.floor(k / cols) * (h + gap);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const s = (Math.floor(y / scale) * im.width + Math.floor(x / scale)) * 4;
      rgba.set(im.rgba.subarray(s, s + 4), ((oy + y) * W + ox + x) * 4);
    }
  });
  return { width: W, height: H, rgba };
}

/** Encodes and writes a PNG atomically (Node). */
export async function writePng(file: string, img: Image): Promise<void> {
  const { PNG } = await nodePackage<typeof import('pngjs')>('pngjs', 'writePng');
  const png = new PNG({ width: img.width, height: img.height });
  png.data = Buffer.from(img.rgba.buffer, img.rgba.byteOffset, img.rgba.byteLength);
  const bytes = PNG.sync.write(png);
  const { writeFileAtomic } = await nodeHelpers('writePng');
  await writeFileAtomic(file, [new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)]);
}

/** Reads a PNG into RGBA (Node). */
export async function readPng(file: string): Promise<Image> {
  const { PNG } = await nodePackage<typeof import('pngjs')>('pngjs', 'readPng');
  const { readFileBytes } = await nodeHelpers('readPng');
  let png: ReturnType<typeof PNG.sync.read>;
  try {
    png = PNG.sync.read(Buffer.from(await readFileBytes(file)));
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`${file}: not a PNG that can be read (${(e as Error).message})`, { file, cause: e });
  }
  return { width: png.width, height: png.height, rgba: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength) };
}
