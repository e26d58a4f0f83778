// Weights to sample from, as `dit sample`, `dit eval` and the demo load them: a checkpoint file or a run
// folder's newest, its model config, the VAE that decodes it, its latent scale and class names, and how to
// sample it — its recipe's objective and sampling with the caller's flags on top, or the official sample.py
// for weights without a recipe. Everything is read and checked on the host before any GPU work.
import { readWeights, ditFromWeights, weightsConfig, configFromMetadata, type WeightSet } from '../dit/checkpoint.js';
import type { DiT } from '../dit/model.js';
import type { DiTConfig } from '../dit/config.js';
import { samplingFor, type SamplingSource } from '../dit/recipes.js';
import type { Sampling } from '../diffusion/sample.js';
import { learnsSigma, samplerMismatch } from '../diffusion/objective.js';
import type { ScheduleName } from '../diffusion/schedule.js';
import { metadataJson } from '../engine/safetensors.js';
import { CheckpointError } from '../engine/errors.js';
import { readVae, buildVae, type VaeFile } from '../vae/checkpoint.js';
import type { AutoencoderKL } from '../vae/model.js';
import { resolveCheckpoint } from './run.js';

/** What a sampler is, read from its files. */
export interface SamplerInfo extends SamplingSource {
  file: string; config: DiTConfig; scale: number; classes: string[]; weights: string; dataset: string | null;
  /** The VAE that decodes its latents (`vae`, else the one the checkpoint names), if any. */
  vaeFile: string | null;
}
/** A sampler's files as read by `readSampler`. */
export interface SamplerFiles extends SamplerInfo { dit: WeightSet; vae: VaeFile | null }
/** A sampler on the GPU. */
export interface SamplerSource extends SamplerInfo { model: DiT; vae: AutoencoderKL | null }

export interface ReadSamplerOptions {
  which: 'ema' | 'model';
  /** Another VAE than the one the checkpoint names. */
  vae?: string;
  /** Attention heads of weights that do not record their config. */
  heads?: number;
  scaleFactor?: number;
  /** Sampling settings that win over the recipe's. */
  sampling?: Partial<Sampling>;
}

/** Reads a checkpoint (or a run folder's newest) and what it needs to be sampled, without the GPU. */
export async function readSampler(src: string, o: ReadSamplerOptions): Promise<SamplerFiles> {
  const file = await resolveCheckpoint(src);
  const w = await readWeights(file, { ema: o.which === 'ema' });
  const recorded = configFromMetadata(w.metadata, file)?.numHeads;
  if (o.heads !== undefined && recorded !== undefined && recorded !== o.heads) throw new CheckpointError(`--heads ${o.heads}: ${file} records its model's ${recorded} heads`, { file });
  const config = weightsConfig(w, o.heads !== undefined ? { numHeads: o.heads } : {});
  const vaeFile = o.vae ?? w.metadata.vae ?? null;
  const vae = vaeFile ? await readVae(vaeFile) : null;
  if (vae && vae.config.latentChannels !== config.inChannels) throw new CheckpointError(`${vaeFile}: the VAE's latents have ${vae.config.latentChannels} channels, the DiT of ${file} takes ${config.inChannels}: give the VAE it was trained with (--vae)`, { file: vaeFile! });
  const scale = o.scaleFactor ?? (w.metadata.scale_factor ? Number(w.metadata.scale_factor) : vae?.config.scalingFactor ?? 1);
  const classes = metadataJson<string[]>(w.metadata, 'classes', file) ?? Array.from({ length: config.numClasses }, (_, i) => `class${i}`);
  const how = samplingFor(w.metadata, o.sampling, file);
  // Weights without a recipe: the official objective as their shapes and metadata say (sigma learned or not, the schedule).
  if (!how.fromRecipe) how.objective = { kind: 'eps', schedule: (w.metadata.schedule ?? 'linear') as ScheduleName, learnSigma: config.learnSigma, minSnrGamma: null };
  if (learnsSigma(how.objective) !== config.learnSigma) throw new CheckpointError(`${file}: its recipe's ${how.objective.kind} objective does not fit a model ${config.learnSigma ? 'with' : 'without'} a learned sigma`, { file });
  const mismatch = samplerMismatch(how.objective, how.sampling.sampler);
  if (mismatch) throw new CheckpointError(`${file}: ${mismatch}`, { file });
  return { file, config, scale, classes, weights: w.metadata.weights ?? 'model', dataset: w.metadata.dataset ?? null, vaeFile, ...how, dit: w, vae };
}

/** The sampler of `readSampler`'s files on the GPU. */
export function buildSampler({ dit, vae, ...info }: SamplerFiles): SamplerSource {
  const model = ditFromWeights(dit, info.config);
  model.eval();
  return { ...info, model, vae: vae ? buildVae(vae) : null };
}

/** "ddim 25 steps, guidance 4 on all channels" (and where the settings came from). */
export function describeSampling(s: SamplingSource): string {
  const g = s.sampling.guide === 'all' ? 'all channels' : 'the first 3 channels';
  const from = s.fromRecipe ? `the recipe${s.preset ? ` of preset ${s.preset}` : ''} the weights were trained with` : 'no recipe recorded: the official sample.py\'s';
  const when = s.sampling.cfgInterval ? ` at noise levels ${s.sampling.cfgInterval.join('–')}` : '';
  return `${s.objective.kind === 'flow' ? 'flow matching' : 'ε-prediction'}, ${s.sampling.sampler} ${s.sampling.steps} steps, guidance ${s.sampling.cfg} on ${g}${when} (${from}, flags overriding)`;
}
