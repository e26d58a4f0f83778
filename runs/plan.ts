// Planning a run: a recipe, the data it trains on and the flags that override it become one RunConfig — the
// model's full config, the recipe as it will actually run, the data, the schedule of logs, checkpoints and
// pictures. Pure (no files, no GPU), so `dit train`, `dit demo` and the browser page plan runs the same way,
// and the plan is written whole into config.json and (as metadata) into every checkpoint.
import { ditConfig, ditGflops, numTokens, type DiTConfig } from '../dit/config.js';
import { projectorMultiplyAdds, type Alignment } from '../dit/align.js';
import type { LatentSet } from '../dit/train.js';
import { RECIPES, DEFAULT_RECIPE, type Recipe, type RecipeName, type ModelRecipe, type OptimRecipe } from '../dit/recipes.js';
import type { Sampling } from '../diffusion/sample.js';
import { learnsSigma, type Objective } from '../diffusion/objective.js';

/** What a run trains on (a latent cache's description). */
export interface DataInfo {
  /** The cache file (absolute), or a description where there is none (the page). */
  latents: string;
  dataset: string | null;
  count: number;
  /** [C, h, w] of one latent. */
  shape: [number, number, number];
  scaleFactor: number;
  classes: string[];
  /** The alignment teacher's features in the cache: tokens per image and width (null: none). */
  teacher: { tokens: number; dim: number } | null;
}

/** What a latent cache holds, as a plan records it (`latents`: its path, or a description where there is no file). */
export function dataInfo(set: LatentSet, latents: string): DataInfo {
  const classes = set.classes.length ? set.classes : Array.from({ length: set.numClasses }, (_, i) => `class${i}`);
  return { latents, dataset: set.dataset, count: set.count, shape: set.shape, scaleFactor: set.scale, classes, teacher: set.teacher ? { tokens: set.teacher.tokens, dim: set.teacher.dim } : null };
}

/** What config.json holds. */
export interface RunConfig {
  version: 2;
  /** The preset the run started from, and the recipe it runs: the preset with the flags' changes. */
  preset: string;
  recipe: Recipe;
  /** Recipe fields the flags changed ('model.depth', 'optim.lr', …). */
  overrides: string[];
  model: DiTConfig;
  seed: number;
  data: DataInfo;
  /** The VAE that decodes the pictures (optional). */
  vae: string | null;
  logEvery: number;
  checkpointEvery: number;
  keep: number;
  /** Sample pictures while training: every N steps (0: only at the end), per class; drawn with recipe.sampling. */
  pictures: { every: number; perClass: number };
  /** EMA snapshots kept for the learning curve (`dit eval --curve`): this many, evenly spaced, the last at the end (0: none). */
  snapshots: number;
  /** The weights the run started from (`--init`), if any. */
  init: string | null;
}

/** Flags that change a recipe: any field of its parts. */
export interface RunOverrides {
  model?: Partial<ModelRecipe>;
  /** Alignment settings to change, or null to switch it off. */
  alignment?: Partial<Alignment> | null;
  optim?: Partial<OptimRecipe>;
  objective?: Partial<Objective>;
  sampling?: Partial<Sampling>;
}

export interface RunOptions {
  seed?: number;
  vae?: string | null;
  init?: string | null;
  logEvery?: number;
  checkpointEvery?: number;
  keep?: number;
  pictures?: Partial<RunConfig['pictures']>;
  snapshots?: number;
}

/** The run's schedule when not given: logs every 25 steps, a checkpoint every 500, the newest 3 kept, pictures every 500 with 6 per class, 8 snapshots. */
export const RUN_DEFAULTS = { seed: 0, logEvery: 25, checkpointEvery: 500, keep: 3, pictures: { every: 500, perClass: 6 }, snapshots: 8 } as const;

/** `base` with the overrides applied, and which fields they changed. */
export function applyOverrides(base: Recipe, o: RunOverrides): { recipe: Recipe; changed: string[] } {
  const changed: string[] = [];
  const merge = <T extends object>(part: string, a: T, b: Partial<T> | undefined): T => {
    const out = { ...a };
    for (const [k, v] of Object.entries(b ?? {})) {
      if (v === undefined) continue;
      if (JSON.stringify((a as Record<string, unknown>)[k]) !== JSON.stringify(v)) changed.push(`${part}.${k}`);
      (out as Record<string, unknown>)[k] = v;
    }
    return out;
  };
  const objective = o.objective?.kind && o.objective.kind !== base.objective.kind
    ? (changed.push('objective.kind'), o.objective as Objective)
    : merge('objective', base.objective, o.objective as Partial<typeof base.objective>);
  const recipe: Recipe = {
    description: base.description,
    model: merge('model', base.model, o.model),
    optim: merge('optim', base.optim, o.optim),
    objective,
    alignment: o.alignment === null ? (base.alignment && changed.push('alignment'), null)
      : o.alignment ? (base.alignment ? merge('alignment', base.alignment, o.alignment) : (changed.push('alignment'), { depth: 1, weight: 1, until: null, ...o.alignment })) : base.alignment,
    sampling: merge('sampling', base.sampling, o.sampling),
  };
  return { recipe, changed };
}

/**
 * The run a recipe makes on `data`: the model's full config (input size, channels and classes from the data),
 * the recipe with the overrides, and the run's schedule. Throws a plain Error naming the problem when the
 * combination cannot be built (callers turn it into a usage error).
 */
export function planRun(preset: RecipeName = DEFAULT_RECIPE, data: DataInfo, overrides: RunOverrides = {}, o: RunOptions = {}): RunConfig {
  const base = RECIPES[preset];
  const { recipe, changed } = applyOverrides(base, overrides);
  const [C, h] = data.shape;
  const model = ditConfig(undefined, {
    ...recipe.model, inputSize: h, inChannels: C, numClasses: data.classes.length,
    learnSigma: learnsSigma(recipe.objective),
  });
  if (recipe.alignment && recipe.alignment.depth > model.depth) throw new Error(`alignment depth ${recipe.alignment.depth} is past the model's last block (depth ${model.depth}): give an --align-depth of at most ${model.depth}`);
  if (recipe.alignment && !data.teacher) throw new Error(`the ${preset} recipe aligns the DiT with a teacher's features, and ${data.latents} holds none: encode the latents with the teacher (dit vae encode --teacher FILE), or switch alignment off (--no-align)`);
  return {
    version: 2, preset, recipe, overrides: changed, model, seed: o.seed ?? RUN_DEFAULTS.seed, data,
    vae: o.vae ?? null, logEvery: o.logEvery ?? RUN_DEFAULTS.logEvery, checkpointEvery: o.checkpointEvery ?? RUN_DEFAULTS.checkpointEvery,
    keep: o.keep ?? RUN_DEFAULTS.keep, pictures: { ...RUN_DEFAULTS.pictures, ...o.pictures }, snapshots: o.snapshots ?? RUN_DEFAULTS.snapshots, init: o.init ?? null,
  };
}

/** The steps whose EMA weights are kept for the learning curve: `n` evenly spaced up to `total`. */
export function snapshotSteps(total: number, n: number): number[] {
  return [...new Set(Array.from({ length: n }, (_, k) => Math.round(((k + 1) * total) / n)))].filter((s) => s >= 1);
}

/**
 * Training compute as the paper counts it: multiply-adds of one image's forward × 3 per trained image, the
 * alignment projector's included (the teacher's features are computed once per cached image, not per step).
 */
export function trainMultiplyAdds(c: Pick<RunConfig, 'model' | 'recipe' | 'data'>, images: number): number {
  const a = c.recipe.alignment && c.data.teacher ? projectorMultiplyAdds(numTokens(c.model), c.model.hiddenSize, c.data.teacher.dim) : 0;
  return 3 * (ditGflops(c.model) * 1e9 + a) * images;
}

/** What every checkpoint of the run carries besides its tensors (the same for `dit train`, the demo and the page). */
export function checkpointMetadata(c: RunConfig, step: number, trainSeconds: number): Record<string, string> {
  return {
    recipe: JSON.stringify(c.recipe), preset: c.preset,
    scale_factor: String(c.data.scaleFactor), classes: JSON.stringify(c.data.classes),
    ...(c.data.dataset ? { dataset: c.data.dataset } : {}), ...(c.vae ? { vae: c.vae } : {}),
    images_seen: String(step * c.recipe.optim.batch), train_multiply_adds: String(trainMultiplyAdds(c, step * c.recipe.optim.batch)),
    train_seconds: trainSeconds.toFixed(1),
  };
}
