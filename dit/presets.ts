// Training presets for the small latent DiTs of this project: the model, the optimisation and the sampling
// settings that go together. How `quick` was found (each candidate scored by `dit eval`) is in
// dit/README.md.
import type { DiTConfig } from './config.js';
import type { DiTTrainConfig } from './train.js';
import type { ScheduleName } from '../diffusion/schedule.js';

export interface Preset {
  description: string;
  model: Partial<DiTConfig>;
  train: Partial<DiTTrainConfig>;
  /** The noise schedule of training and sampling. */
  schedule: ScheduleName;
  /** How its samples are drawn (pictures, `dit eval`, the demo). */
  sample: { sampler: 'ddim' | 'ddpm'; steps: number; cfg: number };
}

const QUICK = {
  description: 'the main job on CPU: a 1.3 M-parameter DiT with patch 1 (64 tokens) on 8×8×4 latents, 2,800 steps at batch 16 with Min-SNR-5 (about 30 min on lavapipe; dit/README.md says what it scores)',
  model: { hiddenSize: 128, depth: 4, numHeads: 4, patchSize: 1, mlpRatio: 4 },
  train: { steps: 2800, batch: 16, lr: 1e-3, warmup: 50, lrSchedule: 'constant', emaDecay: 0.999, emaWarmup: true, minSnrGamma: 5 },
  schedule: 'linear',
  sample: { sampler: 'ddim', steps: 25, cfg: 4 },
} satisfies Preset;

export const PRESETS = {
  quick: QUICK,
  long: {
    description: 'the quick recipe for 11,200 steps (4×, about 105 min on lavapipe), sampled with ancestral DDPM 100 at guidance 1.5: more varied samples and a shorter Fréchet distance than quick\'s (dit/README.md)',
    model: QUICK.model,
    train: { ...QUICK.train, steps: 11200 },
    schedule: QUICK.schedule,
    sample: { sampler: 'ddpm', steps: 100, cfg: 1.5 },
  },
  'dit-s': {
    description: 'DiT-S/2 (hidden 384, depth 12, 6 heads, patch 2) on the 8×8×4 latents, sized for a GPU',
    model: { hiddenSize: 384, depth: 12, numHeads: 6, patchSize: 2, mlpRatio: 4 },
    train: { steps: 50000, batch: 256, lr: 1e-4, warmup: 0, lrSchedule: 'constant', emaDecay: 0.9999, emaWarmup: true },
    schedule: 'linear',
    sample: { sampler: 'ddim', steps: 50, cfg: 3 },
  },
  tiny: {
    description: 'a few minutes anywhere (the browser page, tests): a 2-block DiT',
    model: { hiddenSize: 64, depth: 2, numHeads: 2, patchSize: 2, mlpRatio: 4 },
    train: { steps: 300, batch: 32, lr: 1e-3, warmup: 20, lrSchedule: 'constant', emaDecay: 0.99, emaWarmup: true },
    schedule: 'linear',
    sample: { sampler: 'ddim', steps: 25, cfg: 3 },
  },
} satisfies Record<string, Preset>;

export type PresetName = keyof typeof PRESETS;
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];
