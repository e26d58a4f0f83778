// VAE weights: diffusers safetensors (single or sharded with an index), config from the file's metadata
// (diffusers' config.json keys) or inferred from tensor shapes, legacy attention names mapped.
import { Safetensors, TensorSource, openTensors, metadataJson, readSafetensors, writeSafetensors } from '../engine/safetensors.js';
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

/** The VAE tensors of a source under current diffusers names (float and finite, else an error naming the tensor). */
export function vaeWeights(src: TensorSource): Map<string, HostTensor> {
  const keep = (k: string) => /^(encoder|decoder|quant_conv|post_quant_conv)\./.test(k);
  return new Map(src.keys().filter(keep).map((k) => [renameLegacyVaeKey(k), { shape: src.shape(k), data: src.finiteF32(k) }]));
}

/** A VAE file read on the host, not yet on the GPU: its config (given, metadata, or inferred), weights and metadata. */
export interface VaeFile { config: VaeConfig; tensors: Map<string, HostTensor>; source: string; metadata: Record<string, string> }

/** Reads a VAE from a .safetensors file or a sharded .index.json, without the GPU (Node). */
export async function readVae(file: string, config?: Partial<VaeConfig>): Promise<VaeFile> {
  return readVaeSource(await openTensors(file), file, config);
}

/** The VAE of a file read by `readVae`, on the GPU. */
export function buildVae(f: VaeFile): AutoencoderKL {
  const vae = new AutoencoderKL(f.config);
  vae.loadStateDict(f.tensors, { source: f.source });
  return vae;
}

/** Opens a VAE from a .safetensors file or a sharded .index.json (config: given, metadata, or inferred) (Node). */
export async function loadVae(file: string, config?: Partial<VaeConfig>): Promise<AutoencoderKL> {
  return buildVae(await readVae(file, config));
}

/** A VAE from the bytes of a .safetensors file, e.g. fetched in a browser (`source` names it in errors). */
export function vaeFromBytes(bytes: Uint8Array, source = '<bytes>', config?: Partial<VaeConfig>): AutoencoderKL {
  const st = new Safetensors(bytes, source);
  return buildVae(readVaeSource(new TensorSource([st], new Map(st.keys().map((k) => [k, st])), source), source, config));
}

function readVaeSource(src: TensorSource, file: string, config?: Partial<VaeConfig>): VaeFile {
  const tensors = vaeWeights(src);
  const meta = vaeConfigFromJson(metadataJson<Record<string, unknown>>(src.metadata, 'config', file) ?? {});
  const base = inferVaeConfig((k) => tensors.get(k)?.shape, [...tensors.keys()]);
  return { config: { ...base, ...meta, ...config }, tensors, source: file, metadata: src.metadata };
}

/** Adds entries to a VAE file's metadata (what was measured of it), rewriting it atomically with the same tensors (Node). */
export async function recordInVaeFile(file: string, entries: Record<string, string>): Promise<void> {
  const st = await readSafetensors(file);
  await writeSafetensors(file, new Map(st.keys().map((k) => [k, { shape: st.shape(k), data: st.f32(k) }])), { ...st.metadata, ...entries });
}

/** The held-out PSNR a VAE file records (`dit vae psnr --record`, or the demo that trained it), or null. */
export function recordedPsnr(meta: Record<string, string>): { db: number; images: number } | null {
  const db = Number(meta.psnr_db), images = Number(meta.psnr_images);
  return Number.isFinite(db) && images > 0 ? { db, images } : null;
}

/** The metadata entries that record a PSNR measurement. */
export const psnrEntries = (db: number, images: number) => ({ psnr_db: db.toFixed(2), psnr_images: String(images) });
