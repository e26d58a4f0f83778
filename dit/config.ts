// DiT configurations (the paper's 12 named models plus custom ones), and the analytic Gflops and parameter
// counts by the paper's conventions (DIT_SPEC S1, S9: one multiply-add = one flop, forward pass, one image).

export type Conditioning = 'adaLN-Zero' | 'adaLN' | 'cross-attention' | 'in-context';

export interface DiTConfig {
  /** Latent side (image size / 8). */
  inputSize: number;
  patchSize: number;
  inChannels: number;
  hiddenSize: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
  classDropoutProb: number;
  numClasses: number;
  learnSigma: boolean;
  conditioning: Conditioning;
}

export const DIT_DEFAULTS: DiTConfig = {
  inputSize: 32, patchSize: 2, inChannels: 4, hiddenSize: 1152, depth: 28, numHeads: 16, mlpRatio: 4,
  classDropoutProb: 0.1, numClasses: 1000, learnSigma: true, conditioning: 'adaLN-Zero',
};

const SIZES = { S: { depth: 12, hiddenSize: 384, numHeads: 6 }, B: { depth: 12, hiddenSize: 768, numHeads: 12 }, L: { depth: 24, hiddenSize: 1024, numHeads: 16 }, XL: { depth: 28, hiddenSize: 1152, numHeads: 16 } };

/** 'DiT-XL/2' … 'DiT-S/8'. */
export const DIT_MODEL_NAMES = (['XL', 'L', 'B', 'S'] as const).flatMap((s) => [2, 4, 8].map((p) => `DiT-${s}/${p}`));

/** A named config ('DiT-S/2', …) with overrides, or a custom one from the defaults. */
export function ditConfig(name?: string, overrides: Partial<DiTConfig> = {}): DiTConfig {
  let base: Partial<DiTConfig> = {};
  if (name) {
    const m = /^DiT-(S|B|L|XL)\/(2|4|8)$/.exec(name);
    if (!m) throw new Error(`unknown DiT model '${name}' (expected one of ${DIT_MODEL_NAMES.join(', ')})`);
    base = { ...SIZES[m[1] as keyof typeof SIZES], patchSize: +m[2] };
  }
  const c = { ...DIT_DEFAULTS, ...base, ...overrides };
  validateConfig(c);
  return c;
}

export function validateConfig(c: DiTConfig): void {
  const fail = (m: string) => { throw new Error(`DiT config: ${m}`); };
  if (c.inputSize % c.patchSize) fail(`input size ${c.inputSize} is not divisible by patch size ${c.patchSize}`);
  if (c.hiddenSize % c.numHeads) fail(`hidden size ${c.hiddenSize} is not divisible by ${c.numHeads} heads`);
  if (c.hiddenSize % 4) fail(`hidden size ${c.hiddenSize} must be divisible by 4 (2-D sin-cos position embedding)`);
  if (!(Math.round(c.hiddenSize * c.mlpRatio) >= 1)) fail(`MLP ratio ${c.mlpRatio} leaves no MLP width at hidden size ${c.hiddenSize} (round(${c.hiddenSize} × ${c.mlpRatio}) = ${Math.round(c.hiddenSize * c.mlpRatio)})`);
  if (!['adaLN-Zero', 'adaLN', 'cross-attention', 'in-context'].includes(c.conditioning)) fail(`unknown conditioning '${c.conditioning}'`);
}

export const outChannels = (c: DiTConfig) => (c.learnSigma ? 2 * c.inChannels : c.inChannels);
export const numTokens = (c: DiTConfig) => (c.inputSize / c.patchSize) ** 2;

/** Forward Gflops (multiply-adds, one image, no CFG doubling) as the paper counts them. */
export function ditGflops(c: DiTConfig): number {
  const T = numTokens(c), D = c.hiddenSize, N = c.depth, I = c.inputSize, C = c.inChannels;
  const mlp = c.mlpRatio / 4; // the formula's 8TD² for the MLP scales with the ratio
  const attnMlp = (t: number) => (4 + 8 * mlp) * t * D * D + 2 * t * t * D;
  let block: number;
  switch (c.conditioning) {
    case 'adaLN-Zero': block = attnMlp(T) + 6 * D * D + 2 * T * D; break;
    case 'adaLN': block = attnMlp(T) + 4 * D * D + 2 * T * D; break;
    // q and output projections over T tokens, k/v over the 2 condition tokens, scores/values over 2 keys.
    case 'cross-attention': block = attnMlp(T) + 2 * T * D * D + 4 * D * D + 6 * T * D; break;
    case 'in-context': block = attnMlp(T + 2) + 2 * (T + 2) * D; break;
  }
  // patchify I²CD + final linear 2I²CD (learn_sigma); final adaLN 2D², t-MLP D² + 256D.
  const outRatio = outChannels(c) / C;
  return (N * block + I * I * C * D * (1 + outRatio) + 3 * D * D + 256 * D) / 1e9;
}

/** Trainable parameters (the paper's counts exclude the fixed pos_embed); `withPosEmbed` adds it. */
export function ditParams(c: DiTConfig, withPosEmbed = false): number {
  const D = c.hiddenSize, N = c.depth, p = c.patchSize, C = c.inChannels, Co = outChannels(c), H = Math.round(D * c.mlpRatio);
  const attn = 3 * D * D + 3 * D + D * D + D;
  const mlp = D * H + H + H * D + D;
  let block = attn + mlp;
  if (c.conditioning === 'adaLN-Zero') block += 6 * D * D + 6 * D;
  if (c.conditioning === 'adaLN') block += 4 * D * D + 4 * D;
  if (c.conditioning === 'cross-attention') block += 4 * D * D + 4 * D + 3 * 2 * D; // q, kv, proj; 3 affine LayerNorms
  if (c.conditioning === 'in-context') block += 2 * 2 * D; // 2 affine LayerNorms
  const embed = p * p * C * D + D + (256 * D + D + D * D + D) + (c.numClasses + (c.classDropoutProb > 0 ? 1 : 0)) * D;
  const modulatedFinal = c.conditioning === 'adaLN-Zero' || c.conditioning === 'adaLN';
  const final = p * p * Co * D + p * p * Co + (modulatedFinal ? 2 * D * D + 2 * D : 2 * D);
  return N * block + embed + final + (withPosEmbed ? numTokens(c) * D : 0);
}
