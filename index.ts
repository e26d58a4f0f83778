// dit-webgpu: a WebGPU tensor engine with hand-written WGSL kernels, and DiT on top of it. This is the
// package's main entry (`import … from 'dit-webgpu'`): everything the subpath entries export —
// `dit-webgpu/engine`, `/diffusion`, `/dit`, `/vae` — plus images and class-conditional sampling. It runs in
// Node and in browsers; the Node-only helpers (files, PNGs, datasets on disk) are `dit-webgpu/node`.
export * from './engine.js';
export * from './diffusion/index.js';
export * from './dit/index.js';
export * from './vae/index.js';
export { toImage, grid as imageGrid, type Image } from './data/png.js';
export { imageBatch, subset, type ImageDataset } from './data/dataset.js';
export { generateSynthetic, SYNTHETIC_CLASSES } from './data/synthetic.js';
export { sampleImages, classLabels, toUint8, type SampleOptions } from './eval/samples.js';
