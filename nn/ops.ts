// The op surface in one place (what `import * as ops` gives a model file); the kernel files' families
// (kernels/registry.ts) are not part of it.
export {
  map, helpersFor, broadcastShapes, UNARY, unary, BINARY, binary, neg, exp, log, sqrt, rsqrt, tanh, sigmoid, abs, relu, square, silu, gelu,
  scale, addScalar, powScalar, clamp, add, sub, mul, div, pow, maximum, minimum, where, addInPlace, full, zeros, ones, expand,
  type MapOptions, type UnaryDef, type UnaryOp, type BinaryDef, type BinaryOp,
} from '../kernels/elementwise.js';
export { sum, mean, max, sumTo, softmax, logSoftmax, mse } from '../kernels/reduce.js';
export { stridedCopy, reshape, permute, transpose, flip, rot90, slice, padAxis, pad2d, concat, split, chunk, patchify, unpatchify } from '../kernels/shape.js';
export { matmul, linear, type Activation, type MatmulOptions } from '../kernels/matmul.js';
export { rand, randn, Generator, deriveSeed, cast, type SeedRole } from '../kernels/random.js';
export { adaLNModulate, layerNorm, gatedResidual, ModulationChunk } from '../kernels/layernorm.js';
export { embedding } from '../kernels/embedding.js';
export { flashAttention, flashAttentionPacked, attentionUnfused, selfAttention } from '../kernels/attention.js';
export { conv2d, upsampleNearest2x, avgPool2x, type Conv2dOptions } from '../kernels/conv2d.js';
export { groupNorm } from '../kernels/groupnorm.js';
