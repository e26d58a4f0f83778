// dit-webgpu: a WebGPU tensor engine with hand-written WGSL kernels, and DiT on top of it.
export * from './engine/device.js';
export * from './engine/tensor.js';
export * from './nn/ops.js';
export { backward } from './engine/autograd.js';
export * from './nn/module.js';
export * from './nn/optim.js';
export * from './engine/safetensors.js';
export { autotune } from './kernels/autotune.js';
export { tuningTable, loadTuningTable } from './kernels/tuning.js';
