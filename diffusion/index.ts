// The package entry `dit-webgpu/diffusion`: Gaussian diffusion as the official DiT code — schedules and
// respacing, q_sample / posteriors / p_mean_variance, the training losses, DDPM and DDIM sampling loops with
// classifier-free guidance. Works with any model that implements `Denoiser` (DiT does).
export { GaussianDiffusion, type DiffusionOptions, type VarianceType, type TrainingLosses } from './gaussian.js';
export { sampleLoop, generate, type Denoiser, type StepInfo, type LoopOptions, type GenerateOptions } from './sample.js';
export { trainingLoss, type TrainBatch, type TrainLoss } from './train.js';
export {
  betasFor, spaceTimesteps, createTables, tablesFromBetas, spacedTables, roundHalfEven, type ScheduleName, type DiffusionTables,
} from './schedule.js';
