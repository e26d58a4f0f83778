// DiT, "Scalable Diffusion Models with Transformers" (Peebles & Xie), on the engine. Parameter names and
// initialisation follow the official PyTorch code (facebookresearch/DiT models.py); the block reads like the
// paper's Figure 3. Conditioning designs: adaLN-Zero (default), adaLN, cross-attention, in-context.
import { Tensor, check, fmtShape, noGrad, scope } from '../engine/tensor.js';
import { Module, ModuleList, init } from '../nn/module.js';
import { Linear, LayerNorm } from '../nn/layers.js';
import { Generator, deriveSeed } from '../kernels/random.js';
import { linear } from '../kernels/matmul.js';
import { silu, add, map } from '../kernels/elementwise.js';
import { adaLNModulate, gatedResidual, ModulationChunk } from '../kernels/layernorm.js';
import { selfAttention, flashAttention, attentionUnfused, useFlash } from '../kernels/attention.js';
import { embedding } from '../kernels/embedding.js';
import { patchify, unpatchify, reshape, chunk, concat, slice } from '../kernels/shape.js';
import { type DiTConfig, ditConfig, outChannels, numTokens } from './config.js';

/** DiT's linears: xavier_uniform weights, zero biases (`_basic_init`; overridden below where DiT does). */
class DiTLinear extends Linear {
  constructor(inF: number, outF: number, gen: Generator) { super(inF, outF, gen, 'xavier'); }
}

/** A Sequential(SiLU, Linear) whose linear is named `.1` (as `adaLN_modulation.1`). */
class SiluLinear extends Module {
  readonly lin: Linear;
  constructor(inF: number, outF: number, gen: Generator) {
    super();
    this.lin = this.module('1', new DiTLinear(inF, outF, gen));
  }
}

// ------------------------------------------------------------------------------------------ embedders
/** 256 sinusoidal frequency features of t, [cos, sin] order, in float32 as torch computes them (S3.4). */
export function timestepFrequencies(t: ArrayLike<number>, dim = 256, maxPeriod = 10000): Float32Array {
  const half = Math.floor(dim / 2);
  const f = Math.fround;
  const out = new Float32Array(t.length * dim);
  const logp = f(-Math.log(maxPeriod));
  for (let k = 0; k < half; k++) {
    const freq = f(Math.exp(f(f(logp * k) / half)));
    for (let b = 0; b < t.length; b++) {
      const arg = f(f(t[b]) * freq);
      out[b * dim + k] = Math.cos(arg);
      out[b * dim + half + k] = Math.sin(arg);
    }
  }
  return out;
}

class TimestepEmbedder extends Module {
  readonly mlp0: Linear;
  readonly mlp2: Linear;
  constructor(D: number, gen: Generator, readonly freqDim = 256) {
    super();
    // Sequential(Linear, SiLU, Linear): parameters at mlp.0 and mlp.2.
    const mlp = this.module('mlp', new Module());
    this.mlp0 = mlp.module('0', new DiTLinear(freqDim, D, gen));
    this.mlp2 = mlp.module('2', new DiTLinear(D, D, gen));
  }
  forward(t: ArrayLike<number>): Tensor {
    const freq = Tensor.from(timestepFrequencies(t, this.freqDim), [t.length, this.freqDim]);
    return this.mlp2.forward(this.mlp0.forward(freq, { activation: 'silu' }));
  }
}

class LabelEmbedder extends Module {
  readonly table: Tensor;
  constructor(readonly numClasses: number, D: number, public dropoutProb: number, gen: Generator) {
    super();
    const rows = numClasses + (dropoutProb > 0 ? 1 : 0);
    this.table = this.module('embedding_table', new Module()).param('weight', init.normal([rows, D], 0.02, gen));
  }
  /** Labels with classifier-free-guidance dropout applied (label K = "null"), as token_drop does. */
  dropLabels(y: ArrayLike<number>, train: boolean, gen: Generator | null, forceDropIds?: ArrayLike<number>): number[] {
    let drop: boolean[] | null = null;
    if (forceDropIds) drop = Array.from(forceDropIds, (v) => v === 1);
    else if (train && this.dropoutProb > 0) {
      check(gen, 'LabelEmbedder', 'training with label dropout needs a random generator (DiT.labelDropGenerator)');
      const r = gen.randHost(y.length);
      drop = Array.from(r, (u) => u < this.dropoutProb);
    }
    return Array.from(y, (v, i) => (drop?.[i] ? this.numClasses : v));
  }
  forward(labels: number[]): Tensor {
    for (const l of labels) check(Number.isInteger(l) && l >= 0 && l < this.table.shape[0], 'LabelEmbedder', `label ${l} is outside the table's ${this.table.shape[0]} rows`);
    return embedding(this.table, Tensor.from(Int32Array.from(labels), [labels.length]));
  }
}

/** Fixed 2-D sin-cos position embedding [T, D] (S3.3: sin before cos, column coordinate first), float64 → f32. */
export function sincosPosEmbed(D: number, grid: number): Float32Array {
  const out = new Float32Array(grid * grid * D);
  const q = D / 4;
  for (let m = 0; m < grid * grid; m++) {
    const r = Math.floor(m / grid), c = m % grid;
    for (let k = 0; k < q; k++) {
      const w = 1 / 10000 ** (k / q);
      out[m * D + k] = Math.sin(c * w);
      out[m * D + q + k] = Math.cos(c * w);
      out[m * D + 2 * q + k] = Math.sin(r * w);
      out[m * D + 3 * q + k] = Math.cos(r * w);
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------ blocks
/** Records an intermediate for parity checks; returns it unchanged. */
type Capture = (name: string, t: Tensor) => Tensor;

class Attention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  constructor(D: number, readonly heads: number, gen: Generator) {
    super();
    this.qkv = this.module('qkv', new DiTLinear(D, 3 * D, gen));
    this.proj = this.module('proj', new DiTLinear(D, D, gen));
  }
  forward(x: Tensor): Tensor {
    return this.proj.forward(selfAttention(this.qkv.forward(x), this.heads));
  }
}

class CrossAttention extends Module {
  readonly q: Linear;
  readonly kv: Linear;
  readonly proj: Linear;
  constructor(D: number, readonly heads: number, gen: Generator) {
    super();
    this.q = this.module('q', new DiTLinear(D, D, gen));
    this.kv = this.module('kv', new DiTLinear(D, 2 * D, gen));
    this.proj = this.module('proj', new DiTLinear(D, D, gen));
  }
  /** x [B, T, D] attends to the condition sequence cond [B, S, D]. */
  forward(x: Tensor, cond: Tensor): Tensor {
    const D = x.shape[2];
    const q = this.q.forward(x);
    const [k, v] = chunk(this.kv.forward(cond), 2, 2);
    const o = useFlash(x.shape[0], this.heads, x.shape[1], cond.shape[1], D / this.heads) ? flashAttention(q, k, v, this.heads) : attentionUnfused(q, k, v, this.heads);
    return this.proj.forward(o);
  }
}

class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(D: number, hidden: number, gen: Generator) {
    super();
    this.fc1 = this.module('fc1', new DiTLinear(D, hidden, gen));
    this.fc2 = this.module('fc2', new DiTLinear(hidden, D, gen));
  }
  /** fc2(GELU_tanh(fc1(x))), the GELU fused into fc1's epilogue. */
  forward(x: Tensor): Tensor { return this.fc2.forward(this.fc1.forward(x, { activation: 'gelu' })); }
}

/**
 * One DiT block. adaLN-Zero (Fig. 3, right):
 *   shift, scale, gate (×2) = Linear(SiLU(c))
 *   x = x + gate_msa · Attn(modulate(LN(x), shift_msa, scale_msa))
 *   x = x + gate_mlp · MLP(modulate(LN(x), shift_mlp, scale_mlp))
 * adaLN drops the gates; cross-attention and in-context use plain pre-LN ViT blocks.
 */
export class DiTBlock extends Module {
  readonly attn: Attention;
  readonly mlp: Mlp;
  readonly adaLN?: SiluLinear;
  readonly norms: LayerNorm[] = [];
  readonly crossAttn?: CrossAttention;
  constructor(D: number, heads: number, mlpRatio: number, readonly conditioning: DiTConfig['conditioning'], gen: Generator) {
    super();
    const modulated = conditioning === 'adaLN-Zero' || conditioning === 'adaLN';
    if (!modulated) this.norms.push(this.module('norm1', new LayerNorm(D, 1e-6)));
    this.attn = this.module('attn', new Attention(D, heads, gen));
    if (conditioning === 'cross-attention') {
      this.norms.push(this.module('norm2', new LayerNorm(D, 1e-6)));
      this.crossAttn = this.module('cross_attn', new CrossAttention(D, heads, gen));
    }
    if (!modulated) this.norms.push(this.module(conditioning === 'cross-attention' ? 'norm3' : 'norm2', new LayerNorm(D, 1e-6)));
    this.mlp = this.module('mlp', new Mlp(D, Math.round(D * mlpRatio), gen));
    if (modulated) this.adaLN = this.module('adaLN_modulation', new SiluLinear(D, (conditioning === 'adaLN-Zero' ? 6 : 4) * D, gen));
  }

  /** x [B, T, D]; `cs` = SiLU(c) [B, D] (shared by every block); `cond` the [B, 2, D] sequence for cross-attention. */
  forward(x: Tensor, cs: Tensor, cond?: Tensor, capture: Capture = (_, v) => v): Tensor {
    // Intermediates are dropped as soon as they are consumed; what backward needs the ops saved themselves.
    return scope(() => {
      if (this.conditioning === 'adaLN-Zero') {
        const mod = capture('mod', this.adaLN!.lin.forward(cs));
        const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = ModulationChunk.of(mod, 6);
        const attnOut = capture('attn_out', this.attn.forward(capture('attn_in', adaLNModulate(x, shiftMsa, scaleMsa))));
        const h = capture('after_attn', gatedResidual(x, gateMsa, attnOut));
        const mlpOut = capture('mlp_out', this.mlp.forward(capture('mlp_in', adaLNModulate(h, shiftMlp, scaleMlp))));
        return gatedResidual(h, gateMlp, mlpOut);
      }
      if (this.conditioning === 'adaLN') {
        const [shiftMsa, scaleMsa, shiftMlp, scaleMlp] = ModulationChunk.of(this.adaLN!.lin.forward(cs), 4);
        const h = add(x, this.attn.forward(adaLNModulate(x, shiftMsa, scaleMsa)));
        return add(h, this.mlp.forward(adaLNModulate(h, shiftMlp, scaleMlp)));
      }
      const [n1, n2, n3] = this.norms;
      let h = add(x, this.attn.forward(n1.forward(x)));
      if (this.crossAttn) h = add(h, this.crossAttn.forward(n2.forward(h), cond!));
      return add(h, this.mlp.forward((n3 ?? n2).forward(h)));
    });
  }
}

class FinalLayer extends Module {
  readonly linear: Linear;
  readonly adaLN?: SiluLinear;
  readonly norm?: LayerNorm;
  constructor(D: number, patch: number, outC: number, modulated: boolean, gen: Generator) {
    super();
    if (!modulated) this.norm = this.module('norm_final', new LayerNorm(D, 1e-6));
    this.linear = this.module('linear', new DiTLinear(D, patch * patch * outC, gen));
    if (modulated) this.adaLN = this.module('adaLN_modulation', new SiluLinear(D, 2 * D, gen));
  }
  /** shift, scale = Linear(SiLU(c)) (shift first); Linear(modulate(LN(x), shift, scale)). */
  forward(x: Tensor, cs: Tensor): Tensor {
    if (!this.adaLN) return this.linear.forward(this.norm!.forward(x));
    const [shift, scale] = ModulationChunk.of(this.adaLN.lin.forward(cs), 2);
    return this.linear.forward(adaLNModulate(x, shift, scale));
  }
}

// ------------------------------------------------------------------------------------------ the model
export interface ForwardOptions {
  /** Labels to force to the null class (1 = drop), as the official `force_drop_ids`. */
  forceDropIds?: ArrayLike<number>;
  /** Keep intermediates for parity checks (see `DiT.intermediates`). */
  keepIntermediates?: boolean;
  /** Called with the tokens [B, T, D] after each block (differentiable: representation alignment reads them). */
  onBlock?: (index: number, tokens: Tensor) => void;
}

export class DiT extends Module {
  readonly config: DiTConfig;
  readonly posEmbed: Tensor;
  readonly xEmbedWeight: Tensor;
  readonly xEmbedBias: Tensor;
  readonly tEmbedder: TimestepEmbedder;
  readonly yEmbedder: LabelEmbedder;
  readonly blocks: ModuleList<DiTBlock>;
  readonly finalLayer: FinalLayer;
  /** Random stream for label dropout in training mode. */
  labelDropGenerator: Generator;
  /** Filled by forward({ keepIntermediates: true }): name → tensor (the caller disposes them). */
  intermediates = new Map<string, Tensor>();

  /** Builds a DiT with the official initialisation from `seed`. */
  constructor(config: DiTConfig | string = 'DiT-S/2', overrides: Partial<DiTConfig> = {}, seed = 0) {
    super();
    const c = typeof config === 'string' ? ditConfig(config, overrides) : ditConfig(undefined, { ...config, ...overrides });
    this.config = c;
    const gen = new Generator(seed);
    this.labelDropGenerator = new Generator(deriveSeed(seed, 'dit.labelDrop'));
    const D = c.hiddenSize, p = c.patchSize, C = c.inChannels;
    const grid = c.inputSize / p;
    const modulated = c.conditioning === 'adaLN-Zero' || c.conditioning === 'adaLN';
    // Registration order = the official state_dict order.
    this.posEmbed = this.param('pos_embed', Tensor.from(sincosPosEmbed(D, grid), [1, grid * grid, D]), false);
    // Patch embedding, a Conv2d(k = s = p) initialised like a Linear on its (D, C·p·p) view.
    const proj = this.module('x_embedder', new Module()).module('proj', new Module());
    const w = init.xavierUniform([D, C * p * p], gen);
    this.xEmbedWeight = proj.param('weight', w.view([D, C, p, p]));
    w.dispose();
    this.xEmbedBias = proj.param('bias', init.zeros([D]));
    this.tEmbedder = this.module('t_embedder', new TimestepEmbedder(D, gen));
    this.yEmbedder = this.module('y_embedder', new LabelEmbedder(c.numClasses, D, c.classDropoutProb, gen));
    this.blocks = this.module('blocks', new ModuleList(Array.from({ length: c.depth }, () => new DiTBlock(D, c.numHeads, c.mlpRatio, c.conditioning, gen))));
    this.finalLayer = this.module('final_layer', new FinalLayer(D, p, outChannels(c), modulated, gen));
    this.zeroInit(seed);
    this.nameParameters();
  }

  /** S4.4–S4.6: N(0, 0.02²) label table and timestep MLP weights; zero adaLN modulations and final linear. */
  private zeroInit(seed: number): void {
    noGrad(() => scope(() => {
      const zero = (t: Tensor) => map('T(0.0)', {}, { out: t });
      for (const b of this.blocks.items) if (b.adaLN) { zero(b.adaLN.lin.weight); zero(b.adaLN.lin.bias); }
      if (this.finalLayer.adaLN) { zero(this.finalLayer.adaLN.lin.weight); zero(this.finalLayer.adaLN.lin.bias); }
      zero(this.finalLayer.linear.weight);
      zero(this.finalLayer.linear.bias);
      const gen = new Generator(deriveSeed(seed, 'dit.timestepMlp'));
      for (const w of [this.tEmbedder.mlp0.weight, this.tEmbedder.mlp2.weight]) {
        const n = init.normal(w.shape, 0.02, gen);
        map('x', { x: n }, { out: w });
      }
    }));
  }

  get numTokens(): number { return numTokens(this.config); }

  /** Conditioning vector c = t_emb + y_emb [B, D], with y after label dropout. */
  embedConditions(t: ArrayLike<number>, y: ArrayLike<number>, opts: ForwardOptions = {}): { tEmb: Tensor; yEmb: Tensor } {
    const labels = this.yEmbedder.dropLabels(y, this.training, this.labelDropGenerator, opts.forceDropIds);
    return { tEmb: this.tEmbedder.forward(t), yEmb: this.yEmbedder.forward(labels) };
  }

  /**
   * x [B, C, I, I] latents, t [B] timesteps, y [B] class labels → [B, Cout, I, I]
   * (ε in channels 0..C, the variance interpolation v in C..2C when learn_sigma).
   */
  forward(x: Tensor, t: ArrayLike<number>, y: ArrayLike<number>, opts: ForwardOptions = {}): Tensor {
    const c = this.config;
    const B = x.shape[0];
    check(x.ndim === 4 && x.shape[1] === c.inChannels && x.shape[2] === c.inputSize && x.shape[3] === c.inputSize, 'DiT.forward',
      `x must be [B, ${c.inChannels}, ${c.inputSize}, ${c.inputSize}], got ${fmtShape(x.shape)}`);
    check(t.length === B && y.length === B, 'DiT.forward', `t and y need ${B} entries (got ${t.length} and ${y.length})`);
    const keepI = opts.keepIntermediates ? (name: string, v: Tensor) => { this.intermediates.set(name, v.detach().keep()); return v; } : (_: string, v: Tensor) => v;
    const D = c.hiddenSize, p = c.patchSize;
    // Patchify: Conv2d(k = s = p) as a linear over (channel, i, j) patch vectors, then + pos_embed.
    const w = reshape(this.xEmbedWeight, [D, c.inChannels * p * p]);
    const tokens = keepI('x_tokens', linear(patchify(x, p), w, this.xEmbedBias));
    let h = keepI('x_embed', add(tokens, this.posEmbed));
    const { tEmb, yEmb } = this.embedConditions(t, y, opts);
    keepI('t_emb', tEmb); keepI('y_emb', yEmb);
    const cond = keepI('c', add(tEmb, yEmb));
    const cs = silu(cond);
    let condSeq: Tensor | undefined;
    if (c.conditioning === 'cross-attention' || c.conditioning === 'in-context') {
      condSeq = concat([reshape(tEmb, [B, 1, D]), reshape(yEmb, [B, 1, D])], 1);
      if (c.conditioning === 'in-context') h = concat([condSeq, h], 1);
    }
    this.blocks.items.forEach((blk, i) => {
      h = keepI(`block${i}.out`, blk.forward(h, cs, condSeq, (n, v) => keepI(`block${i}.${n}`, v)));
      opts.onBlock?.(i, c.conditioning === 'in-context' ? slice(h, 1, 2, h.shape[1]) : h);
    });
    if (c.conditioning === 'in-context') h = slice(h, 1, 2, h.shape[1]);
    const out = keepI('final_tokens', this.finalLayer.forward(h, cs));
    return unpatchify(out, p, outChannels(c));
  }

  /**
   * Classifier-free guidance as the official `forward_with_cfg`: the first half of x is duplicated, the model
   * runs on both halves (real labels first, null labels second), and ε = uncond + s·(cond − uncond) on the
   * first 3 channels (official behaviour) or all C channels (`guideAllChannels`).
   */
  forwardWithCfg(x: Tensor, t: ArrayLike<number>, y: ArrayLike<number>, cfgScale: number, opts: { guideAllChannels?: boolean } = {}): Tensor {
    const B = x.shape[0];
    check(B % 2 === 0, 'DiT.forwardWithCfg', `batch ${B} must be even (conditional half, then unconditional half)`);
    const half = slice(x, 0, 0, B / 2);
    const out = this.forward(concat([half, half], 0), t, y);
    return guide(out, cfgScale, opts.guideAllChannels ? this.config.inChannels : 3);
  }
}

/** cat([g, g]) on the first `guided` channels, g = uncond + s·(cond − uncond); other channels unchanged. */
function guide(out: Tensor, s: number, guided: number): Tensor {
  const [B, Co] = out.shape;
  const half = B / 2;
  const cond = slice(out, 0, 0, half), uncond = slice(out, 0, half, B);
  const eps = map('u + p * (c - u)', { c: slice(cond, 1, 0, guided), u: slice(uncond, 1, 0, guided) }, { label: 'cfg', p: s });
  const g = concat([eps, eps], 0);
  if (guided === Co) return g;
  return concat([g, slice(out, 1, guided, Co)], 1);
}
