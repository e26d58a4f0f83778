// VAE weights: diffusers safetensors (single or sharded with an index), config from the file's metadata
// (diffusers' config.json keys) or inferred from tensor shapes, legacy attention names mapped.
import { Safetensors, TensorSource, openTensors } from '../engine/safetensors.js';
import { CheckpointError } from '../engine/errors.js';
import type { HostTensor } from '../nn/module.js';
import { AutoencoderKL, renameLegacyVaeKey, type VaeConfig } from './model.js';

/** A diffusers-style config object (snake_case) → VaeConfig. */
export function vaeConfigFromJson(raw: Record<string, unknown>): Partial<VaeConfig> {
  const out: Partial<VaeConfig> = {};
  if (raw.in_channels !== undefined) out.inChannels = raw.in_channels as number;
  if (raw.out_channels !== undefined) out.outChannels = raw.out_channels as number;
  if (raw.block_out_channels !== undefined) out.blockOutChannels = raw.block_out_channels as number[];
  if (raw.layers_per_block !== undefined) out.layersPerBlock = raw.layers_per_block as number;
  if (raw.norm_num_groups !== undefined) out.normNumGroups = raw.norm_num_groups as number;
  if (raw.latent_channels !== undefined) out.latentChannels = raw.latent_channels as number;
  if (raw.scaling_factor !== undefined) out.scalingFactor = raw.scaling_factor as number;
  return out;
}

/** Infers the architecture from tensor shapes (the group count is not in the shapes: 32 unless it does not divide). */
export function inferVaeConfig(shape: (k: string) => number[] | undefined, keys: string[]): VaeConfig {
  const need = (k: string) => { const s = shape(k); if (!s) throw new CheckpointError(`cannot infer the VAE config: no '${k}' (not diffusers AutoencoderKL weights?)`, { op: 'inferVaeConfig' }); return s; };
  const blocks = new Set(keys.filter((k) => k.startsWith('encoder.down_blocks.')).map((k) => +k.split('.')[2]));
  const blockOutChannels = [...blocks].sort((a, b) => a - b).map((i) => need(`encoder.down_blocks.${i}.resnets.0.conv2.weight`)[0]);
  const layersPerBlock = new Set(keys.filter((k) => k.startsWith('encoder.down_blocks.0.resnets.')).map((k) => k.split('.')[4])).size;
  const groups = blockOutChannels.every((c) => c % 32 === 0) ? 32 : [16, 8, 4, 2, 1].find((g) => blockOutChannels.every((c) => c % g === 0))!;
  return {
    inChannels: need('encoder.conv_in.weight')[1], outChannels: need('decoder.conv_out.weight')[0], blockOutChannels, layersPerBlock,
    normNumGroups: groups, latentChannels: need('post_quant_conv.weight')[0], scalingFactor: 0.18215,
  };
}

/** The VAE tensors of a source under current diffusers names. */
export function vaeWeights(src: TensorSource): Map<string, HostTensor> {
  const keep = (k: string) => /^(encoder|decoder|quant_conv|post_quant_conv)\./.test(k);
  return new Map(src.keys().filter(keep).map((k) => [renameLegacyVaeKey(k), { shape: src.shape(k), data: src.f32(k) }]));
}

/** Opens a VAE from a .safetensors file or a sharded .index.json (config: given, metadata, or inferred) (Node). */
export async function loadVae(file: string, config?: Partial<VaeConfig>): Promise<AutoencoderKL> {
  return vaeFromSource(await openTensors(file), file, config);
}

/** A VAE from the bytes of a .safetensors file, e.g. fetched in a browser (`source` names it in errors). */
export function vaeFromBytes(bytes: Uint8Array, source = '<bytes>', config?: Partial<VaeConfig>): AutoencoderKL {
  const st = new Safetensors(bytes, source);
  return vaeFromSource(new TensorSource([st], new Map(st.keys().map((k) => [k, st])), source), source, config);
}

function vaeFromSource(src: TensorSource, file: string, config?: Partial<VaeConfig>): AutoencoderKL {
  const w = vaeWeights(src);
  const meta = src.metadata.config ? vaeConfigFromJson(JSON.parse(src.metadata.config)) : {};
  const base = inferVaeConfig((k) => w.get(k)?.shape, [...w.keys()]);
  const vae = new AutoencoderKL({ ...base, ...meta, ...config });
  vae.loadStateDict(w, { source: file });
  return vae;
}
