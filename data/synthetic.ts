// The built-in CIFAR-like dataset: 32×32 RGB images in 10 classes that differ in shape and layout (not only
// colour), drawn procedurally and deterministically from a seed: random position, scale, rotation, colours,
// a textured background and mild pixel noise, anti-aliased with 4×4 supersampling. No download.
import type { ImageDataset } from './dataset.js';

export const SYNTHETIC_CLASSES = ['disc', 'square', 'triangle', 'stripes', 'ring', 'cross', 'checkerboard', 'blob', 'star', 'pair'] as const;

/** Deterministic uniform [0, 1) stream (mulberry32), one per image. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hash(...v: number[]): number {
  let h = 0x811c9dc5;
  for (const x of v) { h ^= x >>> 0; h = Math.imul(h, 0x01000193) >>> 0; h ^= h >>> 13; }
  return h >>> 0;
}

type Rgb = [number, number, number];

/** A saturated random colour (HSV with high S, V) in [0, 1]. */
function colour(r: () => number, dark = false): Rgb {
  const h = r() * 6, s = 0.5 + 0.5 * r(), v = dark ? 0.15 + 0.35 * r() : 0.6 + 0.4 * r();
  const i = Math.floor(h), f = h - i, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  return ([[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6]) as Rgb;
}

/** Inside test for class `c` at shape coordinates (u, v) (unit scale, centred, rotated). */
function inside(c: number, u: number, v: number, k: number[]): boolean {
  const r = Math.hypot(u, v);
  switch (c) {
    case 0: return r < 1; // disc
    case 1: return Math.abs(u) < 0.85 && Math.abs(v) < 0.85; // square
    case 2: { // equilateral triangle, vertices (0, −1), (±0.87, 0.5)
      const e = (ax: number, ay: number, bx: number, by: number) => (bx - ax) * (v - ay) - (by - ay) * (u - ax);
      const d1 = e(0, -1, 0.87, 0.5), d2 = e(0.87, 0.5, -0.87, 0.5), d3 = e(-0.87, 0.5, 0, -1);
      return (d1 >= 0 && d2 >= 0 && d3 >= 0) || (d1 <= 0 && d2 <= 0 && d3 <= 0);
    }
    case 3: return Math.abs(u) < 1 && Math.abs(v) < 1 && Math.floor((u + 1) * k[0]) % 2 === 0; // stripes
    case 4: return r < 1 && r > 0.55; // ring
    case 5: return (Math.abs(u) < 0.3 && Math.abs(v) < 1) || (Math.abs(v) < 0.3 && Math.abs(u) < 1); // cross
    case 6: return Math.abs(u) < 1 && Math.abs(v) < 1 && (Math.floor((u + 1) * 2) + Math.floor((v + 1) * 2)) % 2 === 0; // checkerboard
    case 7: { // blob: a wobbly disc
      const a = Math.atan2(v, u);
      return r < 0.75 + 0.2 * Math.sin(3 * a + k[1]) + 0.1 * Math.sin(5 * a + k[2]);
    }
    case 8: { // five-point star: radius from 1 at the points to 0.42 between them
      const sector = (2 * Math.PI) / 5;
      const a = Math.atan2(v, u) + Math.PI / 2;
      const m = Math.abs((((a % sector) + sector) % sector) - sector / 2) / (sector / 2); // 0 at a point, 1 between
      return r < 1 - 0.58 * m;
    }
    default: // a pair of small discs side by side
      return Math.hypot(u - 0.55, v) < 0.42 || Math.hypot(u + 0.55, v) < 0.42;
  }
}

/** Renders image `index` of `split` into `out` (CHW uint8) and returns its label. */
export function renderSynthetic(seed: number, split: number, index: number, out: Uint8Array, offset: number): number {
  const r = mulberry32(hash(seed, split, index));
  const label = Math.floor(r() * 10);
  const S = 32, SS = 4;
  const bg1 = colour(r, r() < 0.5), bg2 = colour(r, r() < 0.5), fg = colour(r, false);
  // Foreground contrast against the background: push towards the opposite brightness.
  const bgLum = (bg1[0] + bg1[1] + bg1[2] + bg2[0] + bg2[1] + bg2[2]) / 6;
  if (Math.abs((fg[0] + fg[1] + fg[2]) / 3 - bgLum) < 0.25) for (let i = 0; i < 3; i++) fg[i] = bgLum > 0.5 ? fg[i] * 0.3 : 0.7 + 0.3 * fg[i];
  const scale = 6 + 7 * r(), cx = 16 + (r() - 0.5) * (32 - 2 * scale) * 0.9, cy = 16 + (r() - 0.5) * (32 - 2 * scale) * 0.9;
  const rot = r() * Math.PI * 2, cs = Math.cos(rot), sn = Math.sin(rot);
  const k = [2 + Math.floor(r() * 3), r() * 6.28, r() * 6.28];
  // Background: a gradient between two colours plus a low-frequency texture.
  const ga = r() * Math.PI * 2, gx = Math.cos(ga), gy = Math.sin(ga);
  const tf = [1 + r() * 3, 1 + r() * 3, r() * 6.28, r() * 6.28], tamp = 0.05 + 0.08 * r();
  const noise = mulberry32(hash(seed, split, index, 7));
  for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
    let cover = 0;
    for (let sy = 0; sy < SS; sy++) for (let sx = 0; sx < SS; sx++) {
      const px = x + (sx + 0.5) / SS - cx, py = y + (sy + 0.5) / SS - cy;
      const u = (cs * px + sn * py) / scale, v = (-sn * px + cs * py) / scale;
      if (inside(label, u, v, k)) cover++;
    }
    const a = cover / (SS * SS);
    const g = 0.5 + 0.5 * (((x - 16) * gx + (y - 16) * gy) / 22);
    const tex = tamp * Math.sin((x / 32) * tf[0] * 6.28 + tf[2]) * Math.sin((y / 32) * tf[1] * 6.28 + tf[3]);
    for (let ch = 0; ch < 3; ch++) {
      const bg = bg1[ch] * (1 - g) + bg2[ch] * g + tex;
      const n = (noise() - 0.5) * 0.04;
      const val = bg * (1 - a) + fg[ch] * a + n;
      out[offset + ch * S * S + y * S + x] = Math.max(0, Math.min(255, Math.round(val * 255)));
    }
  }
  return label;
}

/** Generates `count` images of a split (0 = train, 1 = test) deterministically. */
export function generateSynthetic(seed: number, split: number, count: number, onProgress?: (done: number) => void): ImageDataset {
  const images = new Uint8Array(count * 3072);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    labels[i] = renderSynthetic(seed, split, i, images, i * 3072);
    if (onProgress && (i + 1) % 5000 === 0) onProgress(i + 1);
  }
  return { images, labels, classes: [...SYNTHETIC_CLASSES], channels: 3, height: 32, width: 32, count };
}
