// dit-webgpu: a WebGPU tensor engine with hand-written WGSL kernels, and DiT on top of it.
export * from './engine/device.js';
export * from './engine/tensor.js';
export * from './engine/ops.js';
export { backward, scaleGrads } from './engine/autograd.js';
export * from './engine/module.js';
export * from './engine/optim.js';
export * from './engine/safetensors.js';
export { autotune, tuningTable, loadTuningTable } from './kernels/autotune.js';
