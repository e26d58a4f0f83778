// AutoencoderKL (the Stable Diffusion VAE DiT uses) on the engine, with diffusers' parameter names so a
// hub `diffusion_pytorch_model.safetensors` loads as it is. Encoder → quant_conv → DiagonalGaussian;
// post_quant_conv → Decoder. Quirks as DIT_SPEC/vae README: GroupNorm eps 1e-6, downsample = pad (0,1,0,1)
// then a stride-2 conv, mid-block single-head attention with a residual, no output activation.
import { Tensor, check, fmtShape, scope } from '../engine/tensor.js';
import { Module, ModuleList } from '../nn/module.js';
import { Linear, Conv2d, GroupNorm } from '../nn/layers.js';
import { Generator } from '../kernels/random.js';
import { upsampleNearest2x } from '../kernels/conv2d.js';
import { matmul } from '../kernels/matmul.js';
import { add, map, clamp, exp, mul, scale } from '../kernels/elementwise.js';
import { softmax, sum } from '../kernels/reduce.js';
import { reshape, permute, slice, pad2d, concat } from '../kernels/shape.js';
import { gpu } from '../engine/device.js';
import { blendTile } from '../kernels/blend.js';
import { flashAttention } from '../kernels/attention.js';

export interface VaeConfig {
  inChannels: number;
  outChannels: number;
  blockOutChannels: number[];
  layersPerBlock: number;
  normNumGroups: number;
  latentChannels: number;
  /** Latent scale (DiT uses 0.18215 for the SD VAE); metadata only: encode/decode never apply it. */
  scalingFactor: number;
}

/** stabilityai/sd-vae-ft-mse (and -ema): 83,653,863 parameters, 8× downsampling, 4 latent channels. */
export const SD_VAE_FT_MSE: VaeConfig = { inChannels: 3, outChannels: 3, blockOutChannels: [128, 256, 512, 512], layersPerBlock: 2, normNumGroups: 32, latentChannels: 4, scalingFactor: 0.18215 };

/** A small VAE for 32×32 images with 4× downsampling (8×8×4 latents), the CIFAR-like setting. */
export const SMALL_VAE_32: VaeConfig = { inChannels: 3, outChannels: 3, blockOutChannels: [32, 64, 64], layersPerBlock: 1, normNumGroups: 16, latentChannels: 4, scalingFactor: 1 };

/** Records an intermediate under its module name when the root VAE is capturing. */
type Capture = (name: string, t: Tensor) => Tensor;
const noCapture: Capture = (_n, t) => t;

/** ResnetBlock2D without time embedding: shortcut(x) + conv2(SiLU(norm2(conv1(SiLU(norm1(x)))))). */
class ResnetBlock extends Module {
  readonly norm1: GroupNorm; readonly conv1: Conv2d; readonly norm2: GroupNorm; readonly conv2: Conv2d;
  readonly shortcut?: Conv2d;
  constructor(readonly path: string, inC: number, outC: number, groups: number, gen: Generator) {
    super();
    this.norm1 = this.module('norm1', new GroupNorm(groups, inC));
    this.conv1 = this.module('conv1', new Conv2d(inC, outC, 3, gen));
    this.norm2 = this.module('norm2', new GroupNorm(groups, outC));
    this.conv2 = this.module('conv2', new Conv2d(outC, outC, 3, gen));
    if (inC !== outC) this.shortcut = this.module('conv_shortcut', new Conv2d(inC, outC, 1, gen));
  }
  forward(x: Tensor, cap: Capture): Tensor {
    // Intermediates are freed at the end of the block (what backward needs, the ops saved themselves).
    return scope(() => {
      const h = this.conv2.forward(this.norm2.forward(this.conv1.forward(this.norm1.forward(x, true)), true));
      const s = this.shortcut ? cap(`${this.path}.conv_shortcut`, this.shortcut.forward(x)) : x;
      return cap(this.path, add(s, h));
    });
  }
}

/** The mid-block attention: one head over the H·W tokens, scale C^−½, residual with the un-normalised input. */
class Attention extends Module {
  readonly groupNorm: GroupNorm;
  readonly toQ: Linear; readonly toK: Linear; readonly toV: Linear; readonly toOut: Linear;
  constructor(readonly path: string, C: number, groups: number, gen: Generator) {
    super();
    this.groupNorm = this.module('group_norm', new GroupNorm(groups, C));
    this.toQ = this.module('to_q', new Linear(C, C, gen));
    this.toK = this.module('to_k', new Linear(C, C, gen));
    this.toV = this.module('to_v', new Linear(C, C, gen));
    this.toOut = this.module('to_out', new Module()).module('0', new Linear(C, C, gen));
  }
  forward(x: Tensor, cap: Capture, capturing: boolean): Tensor {
    return scope(() => this.attend(x, cap, capturing));
  }
  private attend(x: Tensor, cap: Capture, capturing: boolean): Tensor {
    const [B, C, H, W] = x.shape;
    const n = cap(`${this.path}.group_norm`, reshape(this.groupNorm.forward(x), [B, C, H * W]));
    const tokens = permute(n, [0, 2, 1]); // [B, HW, C], token = h·W + w
    const q = cap(`${this.path}.to_q`, this.toQ.forward(tokens));
    const k = cap(`${this.path}.to_k`, this.toK.forward(tokens));
    const v = cap(`${this.path}.to_v`, this.toV.forward(tokens));
    let o: Tensor;
    if (capturing || C % 4 !== 0 || C > 128) {
      // Unfused (materialises the HW×HW probabilities: kept for parity, and for wide heads), in query chunks
      // when the whole score matrix would not fit one binding.
      const HW = H * W;
      const rows = Math.max(1, Math.min(HW, Math.floor(gpu().maxBindingBytes / 2 / (4 * HW * B))));
      if (rows >= HW) {
        const p = cap(`${this.path}.attention_probs`, softmax(matmul(q, k, { transB: true, alpha: 1 / Math.sqrt(C) })));
        o = matmul(p, v);
      } else {
        const parts: Tensor[] = [];
        for (let r0 = 0; r0 < HW; r0 += rows) {
          const qc = slice(q, 1, r0, Math.min(HW, r0 + rows));
          parts.push(matmul(softmax(matmul(qc, k, { transB: true, alpha: 1 / Math.sqrt(C) })), v));
        }
        o = concat(parts, 1);
      }
    } else o = flashAttention(q, k, v, 1);
    const out = cap(`${this.path}.to_out.0`, this.toOut.forward(o));
    return cap(this.path, add(x, reshape(permute(out, [0, 2, 1]), [B, C, H, W])));
  }
}

class MidBlock extends Module {
  readonly resnets: ModuleList<ResnetBlock>;
  readonly attn: Attention;
  constructor(readonly path: string, C: number, groups: number, gen: Generator) {
    super();
    this.resnets = this.module('resnets', new ModuleList([new ResnetBlock(`${path}.resnets.0`, C, C, groups, gen), new ResnetBlock(`${path}.resnets.1`, C, C, groups, gen)]));
    this.attn = this.module('attentions', new ModuleList([new Attention(`${path}.attentions.0`, C, groups, gen)])).items[0];
  }
  forward(x: Tensor, cap: Capture, capturing: boolean): Tensor {
    const [r0, r1] = this.resnets.items;
    return cap(this.path, r1.forward(this.attn.forward(r0.forward(x, cap), cap, capturing), cap));
  }
}

class SampleConv extends Module {
  readonly conv: Conv2d;
  constructor(C: number, gen: Generator) {
    super();
    this.conv = this.module('conv', new Conv2d(C, C, 3, gen));
  }
}

class DownBlock extends Module {
  readonly resnets: ModuleList<ResnetBlock>;
  readonly down?: SampleConv;
  constructor(readonly path: string, inC: number, outC: number, layers: number, groups: number, downsample: boolean, gen: Generator) {
    super();
    this.resnets = this.module('resnets', new ModuleList(Array.from({ length: layers }, (_, j) => new ResnetBlock(`${path}.resnets.${j}`, j === 0 ? inC : outC, outC, groups, gen))));
    if (downsample) this.down = this.module('downsamplers', new ModuleList([new SampleConv(outC, gen)])).items[0];
  }
  forward(x: Tensor, cap: Capture): Tensor {
    for (const r of this.resnets.items) x = r.forward(x, cap);
    // Downsample: zero-pad right and bottom only, then a 3×3 stride-2 conv without padding.
    if (this.down) { const down = this.down; x = scope(() => down.conv.forward(pad2d(x, [0, 1, 0, 1]), 2, 0)); }
    return cap(this.path, x);
  }
}

class UpBlock extends Module {
  readonly resnets: ModuleList<ResnetBlock>;
  readonly up?: SampleConv;
  constructor(readonly path: string, inC: number, outC: number, layers: number, groups: number, upsample: boolean, gen: Generator) {
    super();
    this.resnets = this.module('resnets', new ModuleList(Array.from({ length: layers }, (_, j) => new ResnetBlock(`${path}.resnets.${j}`, j === 0 ? inC : outC, outC, groups, gen))));
    if (upsample) this.up = this.module('upsamplers', new ModuleList([new SampleConv(outC, gen)])).items[0];
  }
  forward(x: Tensor, cap: Capture): Tensor {
    for (const r of this.resnets.items) x = r.forward(x, cap);
    if (this.up) { const up = this.up; x = scope(() => up.conv.forward(upsampleNearest2x(x))); }
    return cap(this.path, x);
  }
}

class Encoder extends Module {
  readonly convIn: Conv2d; readonly down: ModuleList<DownBlock>; readonly mid: MidBlock; readonly normOut: GroupNorm; readonly convOut: Conv2d;
  constructor(c: VaeConfig, gen: Generator) {
    super();
    const ch = c.blockOutChannels, G = c.normNumGroups;
    this.convIn = this.module('conv_in', new Conv2d(c.inChannels, ch[0], 3, gen));
    this.down = this.module('down_blocks', new ModuleList(ch.map((out, i) => new DownBlock(`encoder.down_blocks.${i}`, i === 0 ? ch[0] : ch[i - 1], out, c.layersPerBlock, G, i < ch.length - 1, gen))));
    this.mid = this.module('mid_block', new MidBlock('encoder.mid_block', ch[ch.length - 1], G, gen));
    this.normOut = this.module('conv_norm_out', new GroupNorm(G, ch[ch.length - 1]));
    this.convOut = this.module('conv_out', new Conv2d(ch[ch.length - 1], 2 * c.latentChannels, 3, gen));
  }
  forward(x: Tensor, cap: Capture, capturing: boolean): Tensor {
    let h = cap('encoder.conv_in', this.convIn.forward(x));
    for (const b of this.down.items) h = b.forward(h, cap);
    h = this.mid.forward(h, cap, capturing);
    return cap('encoder.conv_out', this.convOut.forward(cap('encoder.conv_act', this.normOut.forward(h, true))));
  }
}

class Decoder extends Module {
  readonly convIn: Conv2d; readonly mid: MidBlock; readonly up: ModuleList<UpBlock>; readonly normOut: GroupNorm; readonly convOut: Conv2d;
  constructor(c: VaeConfig, gen: Generator) {
    super();
    const rev = [...c.blockOutChannels].reverse(), G = c.normNumGroups;
    this.convIn = this.module('conv_in', new Conv2d(c.latentChannels, rev[0], 3, gen));
    this.mid = this.module('mid_block', new MidBlock('decoder.mid_block', rev[0], G, gen));
    this.up = this.module('up_blocks', new ModuleList(rev.map((out, i) => new UpBlock(`decoder.up_blocks.${i}`, i === 0 ? rev[0] : rev[i - 1], out, c.layersPerBlock + 1, G, i < rev.length - 1, gen))));
    this.normOut = this.module('conv_norm_out', new GroupNorm(G, c.blockOutChannels[0]));
    this.convOut = this.module('conv_out', new Conv2d(c.blockOutChannels[0], c.outChannels, 3, gen));
  }
  forward(z: Tensor, cap: Capture, capturing: boolean): Tensor {
    let h = cap('decoder.conv_in', this.convIn.forward(z));
    h = this.mid.forward(h, cap, capturing);
    for (const b of this.up.items) h = b.forward(h, cap);
    return cap('decoder.conv_out', this.convOut.forward(cap('decoder.conv_act', this.normOut.forward(h, true))));
  }
}

/** The posterior N(mean, exp(logvar)) from the encoder's moments; logvar clamped to [−30, 20]. */
export class DiagonalGaussian {
  readonly mean: Tensor;
  readonly logvar: Tensor;
  constructor(moments: Tensor) {
    const L = moments.shape[1] / 2;
    check(Number.isInteger(L), 'DiagonalGaussian', `moments need an even channel count, got ${fmtShape(moments.shape)}`);
    this.mean = slice(moments, 1, 0, L);
    this.logvar = clamp(slice(moments, 1, L, 2 * L), -30, 20);
  }
  get std(): Tensor { return exp(scale(this.logvar, 0.5)); }
  get variance(): Tensor { return exp(this.logvar); }
  mode(): Tensor { return this.mean; }
  /** mean + std·noise (noise given: recorded, or drawn by the caller from a seeded Generator). */
  sample(noise: Tensor): Tensor { return add(this.mean, mul(this.std, noise)); }
  /** KL to N(0, I) (or to `other`), summed over C, H, W: [B]. */
  kl(other?: DiagonalGaussian): Tensor {
    const terms = other
      ? map('0.5 * ((m - n) * (m - n) / exp(lo) + exp(l) / exp(lo) - 1.0 - l + lo)', { m: this.mean, n: other.mean, l: this.logvar, lo: other.logvar }, { label: 'kl' })
      : map('0.5 * (m * m + exp(l) - 1.0 - l)', { m: this.mean, l: this.logvar }, { label: 'kl' });
    return sum(terms, [1, 2, 3]);
  }
  /** Negative log-likelihood of x, summed over C, H, W: [B]. */
  nll(x: Tensor): Tensor {
    return sum(map('0.5 * (1.8378770664093453 + l + (x - m) * (x - m) / exp(l))', { x, m: this.mean, l: this.logvar }, { label: 'nll' }), [1, 2, 3]);
  }
}

export class AutoencoderKL extends Module {
  readonly config: VaeConfig;
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  readonly quantConv: Conv2d;
  readonly postQuantConv: Conv2d;
  /** Filled (module name → output) by encode/decode with `keepIntermediates`; the caller disposes them. */
  intermediates: Map<string, Tensor> | null = null;

  constructor(config: VaeConfig = SMALL_VAE_32, seed = 0) {
    super();
    check(config.blockOutChannels.every((c) => c % config.normNumGroups === 0), 'AutoencoderKL', `every block width (${config.blockOutChannels}) must be divisible by ${config.normNumGroups} groups`);
    this.config = config;
    const gen = new Generator(seed);
    // Registration order = diffusers' state_dict order: encoder, decoder, quant_conv, post_quant_conv.
    this.encoder = this.module('encoder', new Encoder(config, gen));
    this.decoder = this.module('decoder', new Decoder(config, gen));
    this.quantConv = this.module('quant_conv', new Conv2d(2 * config.latentChannels, 2 * config.latentChannels, 1, gen));
    this.postQuantConv = this.module('post_quant_conv', new Conv2d(config.latentChannels, config.latentChannels, 1, gen));
    this.nameParameters();
  }

  /** Spatial downsampling factor (8 for the SD VAE). */
  get downsampling(): number { return 2 ** (this.config.blockOutChannels.length - 1); }

  private cap(): Capture {
    const m = this.intermediates;
    return m ? (n, t) => { m.set(n, t.detach().keep()); return t; } : noCapture;
  }

  /** x [B, 3, H, W] in [−1, 1] → the posterior over latents [B, L, H/f, W/f]. */
  encode(x: Tensor): DiagonalGaussian {
    const c = this.config, f = this.downsampling;
    check(x.ndim === 4 && x.shape[1] === c.inChannels && x.shape[2] % f === 0 && x.shape[3] % f === 0, 'AutoencoderKL.encode', `expected [B, ${c.inChannels}, H, W] with H, W divisible by ${f}, got ${fmtShape(x.shape)}`);
    const cap = this.cap();
    const h = this.encoder.forward(x, cap, !!this.intermediates);
    return new DiagonalGaussian(cap('quant_conv', this.quantConv.forward(h)));
  }

  /** Latents [B, L, h, w] → images [B, 3, h·f, w·f] (unbounded; DiT clamps only for display). */
  decode(z: Tensor): Tensor {
    check(z.ndim === 4 && z.shape[1] === this.config.latentChannels, 'AutoencoderKL.decode', `expected [B, ${this.config.latentChannels}, h, w], got ${fmtShape(z.shape)}`);
    const cap = this.cap();
    return this.decoder.forward(cap('post_quant_conv', this.postQuantConv.forward(z)), cap, !!this.intermediates);
  }

  /** Bytes of the largest activation the decoder holds for one image with a latent of h×w. */
  decodeBytes(h: number, w: number): number {
    const ch = this.config.blockOutChannels, n = ch.length;
    let m = 0;
    for (let i = 0; i < n; i++) m = Math.max(m, Math.max(ch[i], ch[Math.min(i + 1, n - 1)]) * (h * 2 ** (n - 1 - i)) * (w * 2 ** (n - 1 - i)) * 4);
    return m;
  }

  /**
   * decode() for latents of any size: one image at a time, and in overlapping spatial tiles (blended
   * linearly, as diffusers' tiled decoding) when one image's activations would exceed the adapter's binding
   * limit. Reports what it does through `log`.
   */
  decodeLarge(z: Tensor, log: (m: string) => void = () => {}, limit = gpu().maxBindingBytes): Tensor {
    const [B, , h, w] = z.shape;
    if (B * this.decodeBytes(h, w) <= limit) return this.decode(z);
    if (this.decodeBytes(h, w) <= limit) {
      log(`decoding ${B} images one at a time (the batch's activations exceed the ${limit >> 20} MiB binding limit)`);
      return concat(Array.from({ length: B }, (_, b) => this.decode(slice(z, 0, b, b + 1))), 0);
    }
    let t = Math.min(h, w);
    while (t > 8 && this.decodeBytes(t, t) > limit) t = Math.floor(t / 2);
    const overlap = Math.max(1, Math.floor(t / 4)), stride = t - overlap, f = this.downsampling;
    const ys = tileStarts(h, t, stride), xs = tileStarts(w, t, stride);
    log(`decoding in ${ys.length}×${xs.length} tiles of ${t}×${t} latents (overlap ${overlap}): a ${h * f}×${w * f} image's activations (${(this.decodeBytes(h, w) / 2 ** 20).toFixed(0)} MiB) exceed the ${limit >> 20} MiB binding limit`);
    const C = this.config.outChannels, H = h * f, W = w * f;
    const out = map('T(0.0)', {}, { out: Tensor.empty([B, C, H, W]) });
    const wsum = map('T(0.0)', {}, { out: Tensor.empty([B, 1, H, W]) });
    for (let b = 0; b < B; b++) for (const y0 of ys) for (const x0 of xs) {
      const th = Math.min(t, h - y0), tw = Math.min(t, w - x0);
      const tile = scope(() => this.decode(slice(slice(slice(z, 0, b, b + 1), 2, y0, y0 + th), 3, x0, x0 + tw)));
      // Linear ramps over the overlap on edges shared with a neighbouring tile.
      const ramp: [number, number, number, number] = [y0 > 0 ? overlap * f : 0, y0 + th < h ? overlap * f : 0, x0 > 0 ? overlap * f : 0, x0 + tw < w ? overlap * f : 0];
      blendTile(tile, out, wsum, b, y0 * f, x0 * f, ramp);
      tile.dispose();
    }
    const y = map('o / w', { w: wsum }, { label: 'vae.blend', out });
    wsum.dispose();
    return y;
  }

  /** Bytes of the largest activation the encoder holds for one H×W image. */
  encodeBytes(H: number, W: number): number {
    const ch = this.config.blockOutChannels;
    return ch.reduce((m, c, i) => Math.max(m, c * (H / 2 ** i) * (W / 2 ** i) * 4), 0);
  }

  /**
   * encode() for images of any size: one image at a time, and in overlapping tiles whose posterior moments
   * are blended (as diffusers' tiled encoding) when one image's activations would exceed the binding limit.
   */
  encodeLarge(x: Tensor, log: (m: string) => void = () => {}, limit = gpu().maxBindingBytes): DiagonalGaussian {
    const [B, , H, W] = x.shape;
    const f = this.downsampling;
    if (B * this.encodeBytes(H, W) <= limit) return this.encode(x);
    if (this.encodeBytes(H, W) <= limit) {
      log(`encoding ${B} images one at a time (the batch's activations exceed the ${limit >> 20} MiB binding limit)`);
      const ms = Array.from({ length: B }, (_, b) => { const p = this.encode(slice(x, 0, b, b + 1)); return concat([p.mean, p.logvar], 1); });
      return new DiagonalGaussian(concat(ms, 0));
    }
    let t = Math.min(H, W);
    while (t > 2 * f && this.encodeBytes(t, t) > limit) t = Math.floor(t / 2 / f) * f;
    const overlap = Math.max(f, Math.floor(t / 4 / f) * f), stride = t - overlap;
    const ys = tileStarts(H, t, stride), xs = tileStarts(W, t, stride);
    log(`encoding in ${ys.length}×${xs.length} tiles of ${t}×${t} pixels (overlap ${overlap}): a ${H}×${W} image's activations (${(this.encodeBytes(H, W) / 2 ** 20).toFixed(0)} MiB) exceed the ${limit >> 20} MiB binding limit`);
    const L2 = 2 * this.config.latentChannels, h = H / f, w = W / f;
    const out = map('T(0.0)', {}, { out: Tensor.empty([B, L2, h, w]) });
    const wsum = map('T(0.0)', {}, { out: Tensor.empty([B, 1, h, w]) });
    for (let b = 0; b < B; b++) for (const y0 of ys) for (const x0 of xs) {
      const th = Math.min(t, H - y0), tw = Math.min(t, W - x0);
      const m = scope(() => { const p = this.encode(slice(slice(slice(x, 0, b, b + 1), 2, y0, y0 + th), 3, x0, x0 + tw)); return concat([p.mean, p.logvar], 1); });
      const ov = overlap / f;
      const ramp: [number, number, number, number] = [y0 > 0 ? ov : 0, y0 + th < H ? ov : 0, x0 > 0 ? ov : 0, x0 + tw < W ? ov : 0];
      blendTile(m, out, wsum, b, y0 / f, x0 / f, ramp);
      m.dispose();
    }
    return new DiagonalGaussian(map('o / w', { w: wsum }, { label: 'vae.blend', out }));
  }

  /** vae(x).sample: decode(encode(x).mode()). */
  forward(x: Tensor): Tensor { return this.decode(this.encode(x).mode()); }
}

/** Older diffusers names of the mid-block attention (< 0.14, as the sd-vae-ft-mse files) → current ones. */
export function renameLegacyVaeKey(k: string): string {
  return k.replace(/attentions\.(\d+)\.query\./, 'attentions.$1.to_q.').replace(/attentions\.(\d+)\.key\./, 'attentions.$1.to_k.')
    .replace(/attentions\.(\d+)\.value\./, 'attentions.$1.to_v.').replace(/attentions\.(\d+)\.proj_attn\./, 'attentions.$1.to_out.0.');
}

function tileStarts(n: number, t: number, stride: number): number[] {
  if (n <= t) return [0];
  const s: number[] = [];
  for (let p = 0; p + t < n; p += stride) s.push(p);
  s.push(n - t);
  return s;
}
