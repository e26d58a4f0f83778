// Recipes: everything that decides what a DiT run learns and how its samples are drawn, one typed object per
// preset — the model's shape, the optimisation, the objective (the official Gaussian diffusion or flow
// matching, with its timestep density and loss weighting) and the sampling (sampler, steps, guidance, guided
// channels). A run's config.json and every checkpoint it writes hold the recipe whole, so `dit sample`,
// `dit eval`, the training pictures, the demo and the page sample a run the way it was meant to be sampled.
// Weights without a recipe (released or converted official checkpoints) are sampled as the official
// sample.py does: OFFICIAL_SAMPLING. How each preset was chosen, with its measured curve, is in docs/results.md.
import type { Conditioning } from './config.js';
import { metadataJson } from '../engine/safetensors.js';
import { CheckpointError } from '../engine/errors.js';
import { OFFICIAL_OBJECTIVE, type Objective } from '../diffusion/objective.js';
import { OFFICIAL_SAMPLING, type Sampling } from '../diffusion/sample.js';
import type { Alignment } from './align.js';

/** The DiT's shape and conditioning design (the data gives its input size, channels and classes). */
export interface ModelRecipe { hiddenSize: number; depth: number; numHeads: number; patchSize: number; mlpRatio: number; conditioning: Conditioning }

export interface OptimRecipe {
  /** Total steps of the run (a resumed run continues to this). */
  steps: number;
  batch: number;
  lr: number;
  /** Linear warm-up steps, then constant or cosine decay (to `minLrRatio`·lr). */
  warmup: number;
  lrSchedule: 'constant' | 'cosine';
  minLrRatio: number;
  weightDecay: number;
  /** AdamW's β2 (torch's default 0.999; the official code uses it). */
  beta2: number;
  /** Global gradient-norm clipping (null: off). */
  clipGrad: number | null;
  emaDecay: number;
  /**
   * Warm the EMA decay up as min(decay, (1 + step) / (10 + step)). The official fixed 0.9999 assumes ~400k
   * steps; over a short run a fixed decay keeps a large share of the initial weights (0.999 over 1500 steps:
   * 22%, with the zero-initialised adaLN and final layers), and such an average samples badly.
   */
  emaWarmup: boolean;
}


export interface Recipe {
  description: string;
  model: ModelRecipe;
  optim: OptimRecipe;
  /** What the model is trained to predict, and at which noise levels. */
  objective: Objective;
  /** Representation alignment with a teacher's features (the latent cache must hold them), or none. */
  alignment: Alignment | null;
  /** How its samples are drawn (pictures, `dit sample`, `dit eval`, the demo, the page). */
  sampling: Sampling;
}

/** The official train.py's optimisation (AdamW lr 1e-4, no weight decay, batch 256, EMA 0.9999 from the start). */
const OFFICIAL_OPTIM: OptimRecipe = {
  steps: 400000, batch: 256, lr: 1e-4, warmup: 0, lrSchedule: 'constant', minLrRatio: 0.1, weightDecay: 0, beta2: 0.999, clipGrad: null, emaDecay: 0.9999, emaWarmup: false,
};

/** The small model the CPU presets train: D 128, depth 4, 4 heads, patch 1 (64 tokens of 8×8 latents), 1.3 M parameters. */
const SMALL: ModelRecipe = { hiddenSize: 128, depth: 4, numHeads: 4, patchSize: 1, mlpRatio: 4, conditioning: 'adaLN-Zero' };

const QUICK_EPS: Recipe = {
  description: 'the ε-prediction recipe of earlier releases: the small DiT, 2,800 steps at batch 16 with Min-SNR-5, DDIM 25 at guidance 4',
  model: SMALL,
  optim: { ...OFFICIAL_OPTIM, steps: 2800, batch: 16, lr: 1e-3, warmup: 50, emaDecay: 0.999, emaWarmup: true },
  objective: { kind: 'eps', schedule: 'linear', learnSigma: true, minSnrGamma: 5 },
  alignment: null,
  sampling: { sampler: 'ddim', steps: 25, cfg: 4, guide: 'all' },
};

/**
 * The CPU default: the small DiT trained by flow matching (velocity, logit-normal times) with its first block's
 * tokens aligned to a teacher's features (iREPA's convolutional projector), 2,800 steps at batch 16, sampled
 * with Heun's method at guidance 4. How it was chosen, with its learning curve: docs/results.md.
 */
const QUICK: Recipe = {
  description: 'the main job on CPU: the small DiT (1.3 M parameters, patch 1) by flow matching, aligned with a teacher\'s features (REPA), 2,800 steps at batch 16 (about 30 min on lavapipe), Heun 12 steps at guidance 4',
  model: SMALL,
  optim: QUICK_EPS.optim,
  objective: { kind: 'flow', timesteps: { kind: 'logit-normal', mean: 0, std: 1 } },
  alignment: { depth: 1, weight: 2, until: null },
  sampling: { sampler: 'heun', steps: 12, cfg: 4, guide: 'all' },
};

export const RECIPES = {
  quick: QUICK,
  'quick-eps': QUICK_EPS,
  long: {
    ...QUICK,
    description: `the quick recipe for 4× its steps (${(4 * QUICK.optim.steps).toLocaleString('en-US')})`,
    optim: { ...QUICK.optim, steps: 4 * QUICK.optim.steps },
  },
  official: {
    description: 'the paper\'s training recipe (train.py: AdamW lr 1e-4, batch 256, EMA 0.9999, L_simple + L_vlb) on the small DiT, sampled as sample.py; for comparison',
    model: SMALL,
    optim: { ...OFFICIAL_OPTIM, steps: 175 },
    objective: OFFICIAL_OBJECTIVE,
    alignment: null,
    sampling: OFFICIAL_SAMPLING,
  },
  'dit-s': {
    description: 'DiT-S/2 (hidden 384, depth 12, 6 heads, patch 2) on the 8×8×4 latents, sized for a GPU',
    model: { hiddenSize: 384, depth: 12, numHeads: 6, patchSize: 2, mlpRatio: 4, conditioning: 'adaLN-Zero' },
    optim: { ...OFFICIAL_OPTIM, steps: 50000, emaWarmup: true },
    objective: OFFICIAL_OBJECTIVE,
    alignment: null,
    sampling: { sampler: 'ddim', steps: 50, cfg: 3, guide: 'all' },
  },
  tiny: {
    description: 'a few minutes anywhere (the browser page, tests): a 2-block DiT',
    model: { hiddenSize: 64, depth: 2, numHeads: 2, patchSize: 2, mlpRatio: 4, conditioning: 'adaLN-Zero' },
    optim: { ...OFFICIAL_OPTIM, steps: 300, batch: 32, lr: 1e-3, warmup: 20, emaDecay: 0.99, emaWarmup: true },
    objective: OFFICIAL_OBJECTIVE,
    alignment: null,
    sampling: { sampler: 'ddim', steps: 25, cfg: 3, guide: 'all' },
  },
} satisfies Record<string, Recipe>;

export type RecipeName = keyof typeof RECIPES;
export const RECIPE_NAMES = Object.keys(RECIPES) as RecipeName[];
/** The recipe of `dit train` without --preset, the demo and the page: the one that learns most per multiply-add here. */
export const DEFAULT_RECIPE: RecipeName = 'quick';

/** What a weights file says about how to sample it: its recipe's objective and sampling, else the official ones. */
export interface SamplingSource {
  objective: Objective;
  sampling: Sampling;
  /** The preset its run started from, when it says (for messages). */
  preset: string | null;
  /** Whether the file carries a recipe (else it is sampled as the official sample.py does). */
  fromRecipe: boolean;
}

/** The recipe recorded in a checkpoint's metadata (`dit train`, the demo and the page write it), or null. */
export function recipeFromMetadata(meta: Record<string, string>, source = '<metadata>'): Recipe | null {
  const r = metadataJson<Recipe>(meta, 'recipe', source);
  if (!r) return null;
  if (typeof r !== 'object' || !r.objective || !r.sampling || !['eps', 'flow'].includes(r.objective.kind)) throw new CheckpointError(`${source}: metadata 'recipe' is not a recipe (no objective and sampling)`, { file: source });
  return r;
}

/** How to sample weights with this metadata: flags first, then the recorded recipe, then the official sample.py. */
export function samplingFor(meta: Record<string, string>, flags: Partial<Sampling> = {}, source = '<metadata>'): SamplingSource {
  const r = recipeFromMetadata(meta, source);
  const base = r?.sampling ?? OFFICIAL_SAMPLING;
  const given = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)) as Partial<Sampling>;
  const sampling: Sampling = { ...base, ...given };
  return { objective: r?.objective ?? OFFICIAL_OBJECTIVE, sampling, preset: meta.preset ?? null, fromRecipe: !!r };
}
