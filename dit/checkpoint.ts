// DiT checkpoints: safetensors (official names), torch .pt files (released state dicts and training
// checkpoints), config from file metadata or inferred from tensor shapes, and .pt → safetensors conversion.
import { type HostTensor } from '../nn/module.js';
import { Safetensors, TensorSource, openTensors, writeSafetensors, metadataJson, firstNonFinite, type StWriteTensor } from '../engine/safetensors.js';
import { loadTorchCheckpoint, stateDictOf, torchTensorF32, type TorchCheckpoint, type TorchTensor } from '../engine/torchpt.js';
import { CheckpointError } from '../engine/errors.js';
import { nodeHelpers } from '../engine/runtime.js';
import { type DiTConfig, ditConfig, DIT_MODEL_NAMES } from './config.js';
import { DiT } from './model.js';

/** Host tensors by name, from whichever format. */
export interface WeightSet { tensors: Map<string, HostTensor>; metadata: Record<string, string>; source: string }

const SNAKE: Record<string, keyof DiTConfig> = {
  input_size: 'inputSize', patch_size: 'patchSize', in_channels: 'inChannels', hidden_size: 'hiddenSize', depth: 'depth',
  num_heads: 'numHeads', mlp_ratio: 'mlpRatio', class_dropout_prob: 'classDropoutProb', num_classes: 'numClasses', learn_sigma: 'learnSigma',
  conditioning: 'conditioning',
};

/** A config as the metadata `config` JSON (official snake_case names, plus `conditioning`). */
export function configToJson(c: DiTConfig): string {
  const inv = Object.fromEntries(Object.entries(SNAKE).map(([k, v]) => [v, k]));
  return JSON.stringify(Object.fromEntries(Object.entries(c).map(([k, v]) => [inv[k] ?? k, v])));
}

/** The DiT config stored in a file's metadata (official snake_case or ours), if any (`source` names the file in errors). */
export function configFromMetadata(meta: Record<string, string>, source = '<metadata>'): Partial<DiTConfig> | null {
  const raw = metadataJson<Record<string, unknown>>(meta, 'config', source);
  if (!raw) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new CheckpointError(`${source}: metadata 'config' is not a JSON object`, { file: source });
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) out[SNAKE[k] ?? k] = v;
  return out as Partial<DiTConfig>;
}

/** The head counts of the paper's widths (DiT-S, B, L, XL). */
const HEADS_OF_WIDTH: Record<number, number> = { 384: 6, 768: 12, 1024: 16, 1152: 16 };

/**
 * Infers a config from tensor shapes. Heads are not in the shapes: `heads` when given, else the paper's
 * count for its four widths; any other width without `heads` is an error saying so (a guess would sample
 * other images than the model's, silently).
 */
export function inferConfig(shape: (name: string) => number[] | undefined, keys: string[], o: { heads?: number; source?: string } = {}): DiTConfig {
  const where = o.source ? `${o.source}: ` : '';
  const fail = (m: string): never => { throw new CheckpointError(`${where}${m}`, { op: 'inferConfig', file: o.source }); };
  const need = (n: string) => shape(n) ?? fail(`cannot infer the DiT config: no '${n}' tensor (not DiT weights with the official names?)`);
  const [D, C, p] = need('x_embedder.proj.weight');
  const T = need('pos_embed')[1];
  const grid = Math.round(Math.sqrt(T));
  const depth = new Set(keys.filter((k) => k.startsWith('blocks.')).map((k) => k.split('.')[1])).size;
  const rows = need('y_embedder.embedding_table.weight')[0];
  const outF = need('final_layer.linear.weight')[0];
  const fc1 = need('blocks.0.mlp.fc1.weight')[0];
  const ada = shape('blocks.0.adaLN_modulation.1.weight');
  const conditioning: DiTConfig['conditioning'] = ada ? (ada[0] === 6 * D ? 'adaLN-Zero' : 'adaLN') : keys.some((k) => k.includes('cross_attn')) ? 'cross-attention' : 'in-context';
  const heads = o.heads ?? HEADS_OF_WIDTH[D] ?? fail(`hidden size ${D} is not one of the paper's widths (${Object.entries(HEADS_OF_WIDTH).map(([w, h]) => `${w}: ${h} heads`).join(', ')}), and the number of attention heads is not in the shapes: give it (--heads N)`);
  try {
    return ditConfig(undefined, {
      inputSize: grid * p, patchSize: p, inChannels: C, hiddenSize: D, depth, numHeads: heads, mlpRatio: fc1 / D,
      // Official models keep a null-class row (dropout > 0); that is the only way to tell from shapes.
      numClasses: rows - 1, classDropoutProb: 0.1, learnSigma: outF === p * p * 2 * C, conditioning,
    });
  } catch (e) {
    return fail((e as Error).message);
  }
}

/** A torch state dict's tensors, refusing what cannot be weights (integer or boolean, NaN or ±inf) as `Safetensors.finiteF32` does. */
function fromTorch(sd: Map<string, TorchTensor>, source: string): Map<string, HostTensor> {
  return new Map([...sd].map(([k, t]) => {
    if (!['F32', 'F64', 'F16', 'BF16'].includes(t.dtype)) throw new CheckpointError(`${source}: tensor '${k}' is ${t.dtype}, not a float type`, { file: source });
    const data = torchTensorF32(t), i = firstNonFinite(data);
    if (i >= 0) throw new CheckpointError(`${source}: tensor '${k}' holds ${data[i]} at element ${i}: the file's values must be finite`, { file: source });
    return [k, { shape: t.shape, data }];
  }));
}

/** Reads weights from .safetensors, a sharded .index.json, or a torch .pt (bare or {model, ema, …}) (Node). */
export async function readWeights(file: string, opts: { ema?: boolean } = {}): Promise<WeightSet> {
  if (file.endsWith('.pt') || file.endsWith('.pth') || file.endsWith('.bin')) {
    const { readFileBytes } = await nodeHelpers('readWeights');
    return weightsFromTorch(await loadTorchCheckpoint(await readFileBytes(file), file), opts);
  }
  return weightsFromTensors(await openTensors(file), file, opts);
}

/**
 * Weights from the bytes of a .safetensors or torch .pt file, e.g. fetched in a browser (`source` names it
 * in errors and in `WeightSet.source`).
 */
export async function weightsFromBytes(bytes: Uint8Array, source = '<bytes>', opts: { ema?: boolean } = {}): Promise<WeightSet> {
  const zip = bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
  if (zip || bytes[0] === 0x80) return weightsFromTorch(await loadTorchCheckpoint(bytes, source), opts);
  const st = new Safetensors(bytes, source);
  return weightsFromTensors(new TensorSource([st], new Map(st.keys().map((k) => [k, st])), source), source, opts);
}

function weightsFromTorch(ck: TorchCheckpoint, opts: { ema?: boolean }): WeightSet {
  const root = ck.root as Map<string, unknown>;
  const training = root instanceof Map && root.has('model');
  const sd = stateDictOf(ck, training ? (opts.ema === false ? 'model' : 'ema') : undefined);
  return { tensors: fromTorch(sd, ck.source), metadata: {}, source: ck.source };
}

function weightsFromTensors(src: TensorSource, file: string, opts: { ema?: boolean }): WeightSet {
  // A training checkpoint of ours (model weights, `ema.`-prefixed EMA weights, optimizer state): the EMA
  // weights unless the raw model is asked for.
  if (src.metadata.format === 'dit-webgpu-train') {
    const ema = opts.ema !== false;
    const tensors = new Map<string, HostTensor>();
    for (const k of src.keys()) {
      const name = ema ? (k.startsWith('ema.') ? k.slice(4) : null) : (/^(ema|opt)\./.test(k) ? null : k);
      if (name) tensors.set(name, { shape: src.shape(k), data: src.finiteF32(k) });
    }
    return { tensors, metadata: { ...src.metadata, weights: ema ? 'ema' : 'model' }, source: file };
  }
  return { tensors: weightsFromSource(src), metadata: src.metadata, source: file };
}

/** Writes weights with the official names, the config and `extra` metadata (atomically). */
export async function saveWeights(file: string, config: DiTConfig, tensors: Map<string, HostTensor>, extra: Record<string, string> = {}): Promise<void> {
  const out = new Map<string, StWriteTensor>([...tensors].map(([k, t]) => [k, { shape: t.shape, data: t.data as Float32Array }]));
  await writeSafetensors(file, out, { format: 'pt', config: configToJson(config), ...extra });
}

/** The model tensors of a safetensors source (skipping the reference files' inputs/outputs), float and finite. */
export function weightsFromSource(src: TensorSource): Map<string, HostTensor> {
  const isWeight = (k: string) => /^(pos_embed|x_embedder\.|t_embedder\.|y_embedder\.|blocks\.|final_layer\.)/.test(k);
  return new Map(src.keys().filter(isWeight).map((k) => [k, { shape: src.shape(k), data: src.finiteF32(k) }]));
}

/** The config of a weight set: its metadata's, else inferred from the shapes (heads from `config` when given), with `config` over it. */
export function weightsConfig(w: WeightSet, config: Partial<DiTConfig> = {}): DiTConfig {
  const meta = configFromMetadata(w.metadata, w.source);
  const base = meta ? ditConfig(undefined, meta) : inferConfig((n) => w.tensors.get(n)?.shape, [...w.tensors.keys()], { heads: config.numHeads, source: w.source });
  return { ...base, ...config };
}

/** Builds a DiT for a weight set (config: given, else file metadata, else inferred) and loads it. */
export function ditFromWeights(w: WeightSet, config?: Partial<DiTConfig>): DiT {
  const model = new DiT(weightsConfig(w, config));
  model.loadStateDict(w.tensors, { source: w.source });
  return model;
}

/** `dit convert`: a .pt checkpoint to safetensors with the official names (EMA weights of a training checkpoint by default). */
export async function convertCheckpoint(input: string, output: string, opts: { ema?: boolean; heads?: number } = {}): Promise<{ tensors: number; config: DiTConfig }> {
  const w = await readWeights(input, opts);
  const config = inferConfig((n) => w.tensors.get(n)?.shape, [...w.tensors.keys()], { heads: opts.heads, source: input });
  const out = new Map<string, StWriteTensor>([...w.tensors].map(([k, t]) => [k, { shape: t.shape, data: t.data as Float32Array }]));
  await writeSafetensors(output, out, { format: 'pt', source: input, config: JSON.stringify(config) });
  return { tensors: out.size, config };
}

/** The official name of a config ('DiT-S/2'), or null for custom widths. */
export function officialName(c: DiTConfig): string | null {
  for (const name of DIT_MODEL_NAMES) {
    const o = ditConfig(name);
    if (o.hiddenSize === c.hiddenSize && o.depth === c.depth && o.numHeads === c.numHeads && o.patchSize === c.patchSize && c.mlpRatio === 4 && c.conditioning === 'adaLN-Zero') return name;
  }
  return null;
}

/**
 * Writes a checkpoint as the official train.py does (`torch.save({"model", "ema", "opt", "args"})`) so that
 * `torch.load` opens it and the official sample.py finds its EMA weights: `model` and `ema` are
 * OrderedDicts with the official names; `opt` is torch.optim.AdamW's state_dict (params indexed in
 * model.parameters() order, pos_embed included with no state; `step` a float tensor), written when the
 * checkpoint holds the moments; `args` is a plain dict (torch.load's weights_only mode accepts it, an
 * argparse.Namespace it would not) with the official fields plus this project's full config.
 */
export async function exportTorch(file: string, out: string): Promise<{ tensors: number; opt: boolean; args: Record<string, unknown> }> {
  const { serializeTorch, PyOrderedDict, PyFloat, PyTuple } = await import('../engine/torchpt.js');
  const { readSafetensors } = await import('../engine/safetensors.js');
  const { writeFileAtomic } = await nodeHelpers('exportTorch');
  if (/\.(pt|pth|bin)$/.test(file)) throw new CheckpointError(`${file}: a torch file; export takes this project's safetensors checkpoints (a run's, or dit convert's output)`, { file });
  const st = await readSafetensors(file);
  const meta = configFromMetadata(st.metadata, file);
  if (!meta) throw new CheckpointError(`${file}: no config metadata (export takes this project's checkpoints; convert other files with dit convert first)`, { file });
  const config = ditConfig(undefined, meta);
  const training = st.metadata.format === 'dit-webgpu-train';
  // Our files list the model's tensors in state-dict order (the order they are written in). The alignment
  // projector (`align.`) is trained beside the DiT but is no part of it: the official layout has no place for it.
  const names = st.keys().filter((k) => !/^(ema|opt|align)\./.test(k));
  const tensorOf = (k: string): TorchTensor => ({ dtype: 'F32', shape: st.shape(k), data: st.f32(k).slice() });
  const model = new Map<string, unknown>(names.map((n) => [n, tensorOf(n)]));
  const ema = new Map<string, unknown>(names.map((n) => [n, tensorOf(training ? `ema.${n}` : n)]));
  const root = new Map<string, unknown>([['model', new PyOrderedDict(model)], ['ema', new PyOrderedDict(ema)]]);
  const train = training ? metadataJson<{ lr: number; weightDecay: number; batch: number; seed: number; beta2?: number }>(st.metadata, 'train', file) ?? null : null;
  const hasOpt = training && names.some((n) => st.has(`opt.m.${n}`));
  if (hasOpt && train) {
    const state = new Map<number, unknown>();
    const step = Number(st.metadata.opt_step);
    names.forEach((n, i) => {
      if (!st.has(`opt.m.${n}`)) return;
      state.set(i, new Map<string, unknown>([['step', { dtype: 'F32', shape: [], data: Float32Array.of(step) } as TorchTensor], ['exp_avg', tensorOf(`opt.m.${n}`)], ['exp_avg_sq', tensorOf(`opt.v.${n}`)]]));
    });
    const group = new Map<string, unknown>([
      ['lr', new PyFloat(train.lr)], ['betas', new PyTuple([new PyFloat(0.9), new PyFloat(train.beta2 ?? 0.999)])], ['eps', new PyFloat(1e-8)],
      ['weight_decay', new PyFloat(train.weightDecay)], ['amsgrad', false], ['foreach', null], ['maximize', false], ['capturable', false],
      ['differentiable', false], ['fused', null], ['params', names.map((_, i) => i)],
    ]);
    root.set('opt', new Map<string, unknown>([['state', state], ['param_groups', [group]]]));
  }
  const args: Record<string, unknown> = {
    model: officialName(config) ?? 'custom', image_size: config.inputSize * 8, num_classes: config.numClasses,
    ...(train ? { global_batch_size: train.batch, global_seed: train.seed } : {}), vae: 'custom', learn_sigma: config.learnSigma,
    dit_webgpu_config: configToJson(config), ...(st.metadata.step ? { train_steps: Number(st.metadata.step) } : {}),
  };
  root.set('args', new Map(Object.entries(args)));
  await writeFileAtomic(out, serializeTorch(root));
  return { tensors: names.length, opt: hasOpt, args };
}
