// The package entry `dit-webgpu/dit`: the Diffusion Transformer (Peebles & Xie) — the model and its configs
// (the paper's twelve, custom ones, Gflops), checkpoints (safetensors, torch .pt, config inference,
// conversion), the trainer, and the recipes (presets) it trains. Sampling lives in `dit-webgpu/diffusion`.
export { DiT, DiTBlock, timestepFrequencies, sincosPosEmbed, type ForwardOptions } from './model.js';
export {
  ditConfig, validateConfig, ditGflops, ditParams, outChannels, numTokens, DIT_DEFAULTS, DIT_MODEL_NAMES,
  type DiTConfig, type Conditioning,
} from './config.js';
export {
  readWeights, weightsFromBytes, weightsFromSource, ditFromWeights, saveWeights, convertCheckpoint, exportTorch,
  inferConfig, configFromMetadata, configToJson, officialName, type WeightSet,
} from './checkpoint.js';
export { DiTTrainer, LatentSet, DivergenceError, streamSeed, type DiTTrainConfig, type StepMetrics } from './train.js';
export {
  RECIPES, RECIPE_NAMES, DEFAULT_RECIPE, recipeFromMetadata, samplingFor, type Recipe, type RecipeName, type ModelRecipe, type OptimRecipe, type SamplingSource,
} from './recipes.js';
