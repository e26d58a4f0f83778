// The op surface in one place (what `import * as ops` gives a model file).
export * from '../kernels/elementwise.js';
export * from '../kernels/reduce.js';
export * from '../kernels/shape.js';
export { matmul, linear, type Activation, type MatmulOptions } from '../kernels/matmul.js';
export { rand, randn, Generator, cast } from '../kernels/random.js';
export { adaLNModulate, layerNorm, gatedResidual, ModulationChunk } from '../kernels/layernorm.js';
export { embedding } from '../kernels/embedding.js';
export { flashAttention, flashAttentionPacked, attentionUnfused, selfAttention } from '../kernels/attention.js';
export { conv2d, upsampleNearest2x, type Conv2dOptions } from '../kernels/conv2d.js';
export { groupNorm } from '../kernels/groupnorm.js';
