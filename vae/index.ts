// The package entry `dit-webgpu/vae`: AutoencoderKL with diffusers' names (sd-vae-ft-mse and a small 32×32
// preset), loading diffusers checkpoints, training, held-out PSNR, and encoding a dataset to a latent cache.
export { AutoencoderKL, DiagonalGaussian, SD_VAE_FT_MSE, SMALL_VAE_32, renameLegacyVaeKey, type VaeConfig } from './model.js';
export { loadVae, vaeFromBytes, vaeWeights, vaeConfigFromJson, inferVaeConfig } from './checkpoint.js';
export { trainVae, psnr, saveVae, vaeCheckpoint, encodeDataset, encodeLatents, type VaeTrainOptions, type EncodeOptions } from './train.js';
