// The package entry `dit-webgpu/engine`: the tensor engine without the DiT — device, tensors and memory,
// autograd, the ops (WGSL kernels), modules and layers, optimizers, safetensors and torch .pt I/O, and what a
// user needs to write a kernel of their own. It gathers the engine's three layers (engine ← kernels ← nn)
// from above them, beside index.ts, so no layer imports upwards. Browser-safe: nothing here imports a Node
// built-in (file helpers load Node at run time).

// device
export { getDevice, closeDevice, gpu, describeAdapter, Gpu, GpuError, type AdapterSummary, type DeviceOptions, type DispatchArgs } from './engine/device.js';
export { type MemoryStats } from './engine/pool.js';
// errors
export { DitError, ShapeError, DeviceError, CheckpointError, DisposedTensorError, NonFiniteError, type ErrorDetails } from './engine/errors.js';
// tensors, memory, the autograd graph
export {
  Tensor, scope, scopeAsync, keep, noGrad, isGradEnabled, memory, record, AssembledGradient, check, checkDtype, numel, fmtShape, dtypeBytes,
  type DType, type Shape, type TypedData, type BackwardFn,
} from './engine/tensor.js';
export { backward } from './engine/autograd.js';
// the ops
export * from './nn/ops.js';
export { crossEntropy } from './nn/losses.js';
// modules, layers, optimizers
export { Module, ModuleList, init, type HostTensor } from './nn/module.js';
export { Linear, Conv2d, GroupNorm, LayerNorm, type LayerInit } from './nn/layers.js';
export { AdamW, EMA, scaleGrads, learningRate, type AdamWOptions, type LrSchedule } from './nn/optim.js';
// checkpoints
export {
  Safetensors, SafetensorsError, TensorSource, serializeSafetensors, readSafetensors, writeSafetensors, openTensors, loadSharded,
  type StDtype, type StEntry, type StWriteTensor,
} from './engine/safetensors.js';
export {
  TorchLoadError, loadTorchCheckpoint, stateDictOf, torchTensorF32, isTorchTensor, serializeTorch, PyFloat, PyTuple, PyOrderedDict,
  type TorchTensor, type TorchCheckpoint, type PyValue,
} from './engine/torchpt.js';
export { f32ToF16, f16ToF32, bf16ToF32 } from './engine/half.js';
// writing kernels: launch a WGSL compute shader on tensors, record it (and its backward) on the autograd tape
export { launch, uniforms, Uniforms, grid as dispatchGrid, linearIndex, gridArgs, stridesOf, type UniformType, type UniformFields, type UniformValues } from './kernels/util.js';
// variant tuning
export { autotune } from './kernels/autotune.js';
export { tuningTable, loadTuningTable } from './kernels/tuning.js';
