// DiT checkpoints: safetensors (official names), torch .pt files (released state dicts and training
// checkpoints), config from file metadata or inferred from tensor shapes, and .pt → safetensors conversion.
import { type HostTensor } from '../engine/module.js';
import { TensorSource, openTensors, writeSafetensors, type StWriteTensor } from '../engine/safetensors.js';
import { loadTorchCheckpoint, stateDictOf, torchTensorF32, type TorchTensor } from '../engine/torchpt.js';
import { type DiTConfig, ditConfig } from './config.js';
import { DiT } from './model.js';

/** Host tensors by name, from whichever format. */
export interface WeightSet { tensors: Map<string, HostTensor>; metadata: Record<string, string>; source: string }

const SNAKE: Record<string, keyof DiTConfig> = {
  input_size: 'inputSize', patch_size: 'patchSize', in_channels: 'inChannels', hidden_size: 'hiddenSize', depth: 'depth',
  num_heads: 'numHeads', mlp_ratio: 'mlpRatio', class_dropout_prob: 'classDropoutProb', num_classes: 'numClasses', learn_sigma: 'learnSigma',
  conditioning: 'conditioning',
};

/** The DiT config stored in a file's metadata (official snake_case or ours), if any. */
export function configFromMetadata(meta: Record<string, string>): Partial<DiTConfig> | null {
  if (!meta.config) return null;
  const raw = JSON.parse(meta.config) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) out[SNAKE[k] ?? k] = v;
  return out as Partial<DiTConfig>;
}

/** Infers a config from tensor shapes (heads are not in the shapes: DiT's D→H table, else 64-wide heads). */
export function inferConfig(shape: (name: string) => number[] | undefined, keys: string[]): DiTConfig {
  const need = (n: string) => {
    const s = shape(n);
    if (!s) throw new Error(`cannot infer the DiT config: no '${n}' tensor`);
    return s;
  };
  const [D, C, p] = need('x_embedder.proj.weight');
  const T = need('pos_embed')[1];
  const grid = Math.round(Math.sqrt(T));
  const depth = new Set(keys.filter((k) => k.startsWith('blocks.')).map((k) => k.split('.')[1])).size;
  const rows = need('y_embedder.embedding_table.weight')[0];
  const outF = need('final_layer.linear.weight')[0];
  const fc1 = need('blocks.0.mlp.fc1.weight')[0];
  const ada = shape('blocks.0.adaLN_modulation.1.weight');
  const conditioning: DiTConfig['conditioning'] = ada ? (ada[0] === 6 * D ? 'adaLN-Zero' : 'adaLN') : keys.some((k) => k.includes('cross_attn')) ? 'cross-attention' : 'in-context';
  const heads = ({ 384: 6, 768: 12, 1024: 16, 1152: 16 } as Record<number, number>)[D] ?? Math.max(1, Math.round(D / 64));
  return ditConfig(undefined, {
    inputSize: grid * p, patchSize: p, inChannels: C, hiddenSize: D, depth, numHeads: heads, mlpRatio: fc1 / D,
    // Official models keep a null-class row (dropout > 0); that is the only way to tell from shapes.
    numClasses: rows - 1, classDropoutProb: 0.1, learnSigma: outF === p * p * 2 * C, conditioning,
  });
}

function fromTorch(sd: Map<string, TorchTensor>): Map<string, HostTensor> {
  return new Map([...sd].map(([k, t]) => [k, { shape: t.shape, data: torchTensorF32(t) }]));
}

/** Reads weights from .safetensors, a sharded .index.json, or a torch .pt (bare or {model, ema, …}). */
export async function readWeights(file: string, opts: { ema?: boolean } = {}): Promise<WeightSet> {
  if (file.endsWith('.pt') || file.endsWith('.pth') || file.endsWith('.bin')) {
    const { readFileBytes } = await import('../engine/node.js');
    const ck = await loadTorchCheckpoint(await readFileBytes(file), file);
    const root = ck.root as Map<string, unknown>;
    const training = root instanceof Map && root.has('model');
    const sd = stateDictOf(ck, training ? (opts.ema === false ? 'model' : 'ema') : undefined);
    return { tensors: fromTorch(sd), metadata: {}, source: file };
  }
  const src = await openTensors(file);
  return { tensors: weightsFromSource(src), metadata: src.metadata, source: file };
}

/** The model tensors of a safetensors source (skipping the reference files' inputs/outputs). */
export function weightsFromSource(src: TensorSource): Map<string, HostTensor> {
  const isWeight = (k: string) => /^(pos_embed|x_embedder\.|t_embedder\.|y_embedder\.|blocks\.|final_layer\.)/.test(k);
  return new Map(src.keys().filter(isWeight).map((k) => [k, { shape: src.shape(k), data: src.f32(k) }]));
}

/** Builds a DiT for a weight set (config: given, else file metadata, else inferred) and loads it. */
export function ditFromWeights(w: WeightSet, config?: Partial<DiTConfig>): DiT {
  const meta = configFromMetadata(w.metadata);
  const shapes = (n: string) => w.tensors.get(n)?.shape;
  const base = meta ? ditConfig(undefined, meta) : inferConfig(shapes, [...w.tensors.keys()]);
  const model = new DiT({ ...base, ...config });
  model.loadStateDict(w.tensors, { source: w.source });
  return model;
}

/** `dit convert`: a .pt checkpoint to safetensors with the official names (EMA weights of a training checkpoint by default). */
export async function convertCheckpoint(input: string, output: string, opts: { ema?: boolean; heads?: number } = {}): Promise<{ tensors: number; config: DiTConfig }> {
  const w = await readWeights(input, opts);
  const inferred = inferConfig((n) => w.tensors.get(n)?.shape, [...w.tensors.keys()]);
  // Head count is not in the shapes: given, or DiT's table for the named widths.
  const config = opts.heads ? ditConfig(undefined, { ...inferred, numHeads: opts.heads }) : inferred;
  const out = new Map<string, StWriteTensor>([...w.tensors].map(([k, t]) => [k, { shape: t.shape, data: t.data as Float32Array }]));
  await writeSafetensors(output, out, { format: 'pt', source: input, config: JSON.stringify(config) });
  return { tensors: out.size, config };
}
