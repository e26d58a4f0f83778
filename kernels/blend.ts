// Tiled processing of large images (the VAE's tiled encode/decode): a tile is added into the output with
// linear weight ramps over the overlaps it shares with neighbours, and the weights are summed, so dividing
// by the sum afterwards blends the tiles as diffusers' tiled VAE does.
import { Tensor, check, fmtShape } from '../engine/tensor.js';
import { uniforms, grid, gridArgs, launch, linearIndex } from './util.js';
import { normal, type Family } from './reference.js';

/** out += tile·ramp, wsum += ramp over one tile's footprint (queue order serialises overlapping tiles). */
const BlendUniforms = uniforms({ n: 'u32', C: 'u32', th: 'u32', tw: 'u32', H: 'u32', W: 'u32', b: 'u32', y0: 'u32', x0: 'u32', rt: 'u32', rb: 'u32', rl: 'u32', rr: 'u32' });
const BLEND_TILE = /* wgsl */`
${BlendUniforms.wgsl}
@group(0) @binding(1) var<storage, read> TILE: array<f32>;
@group(0) @binding(2) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(3) var<storage, read_write> WS: array<f32>;
fn ramp(i: u32, n: u32, lo: u32, hi: u32) -> f32 {
  var r = 1.0;
  if (lo > 0u) { r = min(r, (f32(i) + 0.5) / f32(lo)); }
  if (hi > 0u) { r = min(r, (f32(n - 1u - i) + 0.5) / f32(hi)); }
  return r;
}
@compute @workgroup_size(64)
fn main(${gridArgs}) {
  let i = ${linearIndex(64)};
  if (i >= u.n) { return; }
  let x = i % u.tw; let y = (i / u.tw) % u.th; let c = i / (u.tw * u.th);
  let wgt = ramp(y, u.th, u.rt, u.rb) * ramp(x, u.tw, u.rl, u.rr);
  let p = (u.y0 + y) * u.W + u.x0 + x;
  let o = (u.b * u.C + c) * u.H * u.W + p;
  OUT[o] = OUT[o] + TILE[i] * wgt;
  if (c == 0u) { WS[u.b * u.H * u.W + p] = WS[u.b * u.H * u.W + p] + wgt; }
}`;

/**
 * out[b, :, y0:y0+th, x0:x0+tw] += tile·ramp and wsum[b, 0, …] += ramp, for a tile [1, C, th, tw]; `ramp`
 * gives the overlap widths [top, bottom, left, right] (0 where the tile meets the image border).
 */
export function blendTile(tile: Tensor, out: Tensor, wsum: Tensor, b: number, y0: number, x0: number, ramp: [number, number, number, number]): void {
  const [, C, th, tw] = tile.shape, [, Co, H, W] = out.shape;
  check(tile.ndim === 4 && Co === C && y0 + th <= H && x0 + tw <= W && b < out.shape[0], 'blendTile', `tile ${fmtShape(tile.shape)} at (${b}, ${y0}, ${x0}) does not fit the output ${fmtShape(out.shape)}`);
  launch('blendTile', BLEND_TILE, [tile, out, wsum], grid(tile.size, 64), BlendUniforms.pack({ n: tile.size, C, th, tw, H, W, b, y0, x0, rt: ramp[0], rb: ramp[1], rl: ramp[2], rr: ramp[3] }));
}

// ------------------------------------------------------------------------------------------ the family (kernels/registry.ts)
interface BlendProblem { C: number; th: number; tw: number; B: number; H: number; W: number; b: number; y0: number; x0: number; ramp: [number, number, number, number] }

export const blendFamily: Family<BlendProblem> = {
  name: 'blend',
  file: 'kernels/blend.ts',
  variants: { blendTile: "a tile added into the output with linear ramps over its overlaps, and the ramps into the weight sum" },
  unsupported: () => null,
  problems: () => [{ C: 3, th: 6, tw: 7, B: 2, H: 9, W: 11, b: 1, y0: 2, x0: 4, ramp: [2, 0, 3, 1] }, { C: 2, th: 4, tw: 4, B: 1, H: 4, W: 4, b: 0, y0: 0, x0: 0, ramp: [0, 0, 0, 0] }],
  describe: (p) => `tile [${p.C},${p.th},${p.tw}] at (${p.b},${p.y0},${p.x0}) of [${p.B},${p.C},${p.H},${p.W}] ramps [${p.ramp}]`,
  inputs: (p, seed) => [normal([1, p.C, p.th, p.tw], seed, 1, false), normal([p.B, p.C, p.H, p.W], seed + 1, 1, false), normal([p.B, 1, p.H, p.W], seed + 2, 1, false)],
  reference: (p, [tile, out, ws]) => {
    const ramp = (i: number, n: number, lo: number, hi: number) => Math.min(1, lo ? (i + 0.5) / lo : 1, hi ? (n - 1 - i + 0.5) / hi : 1);
    const o = Float64Array.from(out), w = Float64Array.from(ws);
    for (let c = 0; c < p.C; c++) for (let y = 0; y < p.th; y++) for (let x = 0; x < p.tw; x++) {
      const r = ramp(y, p.th, p.ramp[0], p.ramp[1]) * ramp(x, p.tw, p.ramp[2], p.ramp[3]);
      const px = (p.y0 + y) * p.W + p.x0 + x;
      o[(p.b * p.C + c) * p.H * p.W + px] += tile[(c * p.th + y) * p.tw + x] * r;
      if (c === 0) w[p.b * p.H * p.W + px] += r;
    }
    return [o, w];
  },
  run: (p, [tile, out, ws]) => { blendTile(tile, out, ws, p.b, p.y0, p.x0, p.ramp); return [out, ws]; },
  tolerance: () => 1e-6,
};
