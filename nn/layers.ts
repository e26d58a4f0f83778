// The layers models are built from, each a Module with PyTorch's parameter names (`weight`, `bias`) and
// initialisation: Linear, Conv2d, GroupNorm and LayerNorm. Models pick the init their reference code uses.
import { Tensor } from '../engine/tensor.js';
import { Module, init } from './module.js';
import { Generator } from '../kernels/random.js';
import { linear, type Activation } from '../kernels/matmul.js';
import { conv2d } from '../kernels/conv2d.js';
import { groupNorm } from '../kernels/groupnorm.js';
import { layerNorm } from '../kernels/layernorm.js';
import { full } from '../kernels/elementwise.js';

/**
 * Parameter initialisation: `torch` is nn.Linear / nn.Conv2d's default (U(±1/√fan_in) for weights and
 * biases), `xavier` is xavier_uniform weights with zero biases (DiT's `_basic_init`).
 */
export type LayerInit = 'torch' | 'xavier';

function weightInit(shape: number[], fanIn: number, how: LayerInit, gen: Generator): Tensor {
  return how === 'xavier' ? init.xavierUniform(shape, gen) : init.torchDefault(shape, fanIn, gen);
}

function biasInit(n: number, fanIn: number, how: LayerInit, gen: Generator): Tensor {
  return how === 'xavier' ? init.zeros([n]) : init.torchDefault([n], fanIn, gen);
}

/** y = x·Wᵀ + b (W: [out, in]), with an optional fused activation or residual. */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(inF: number, outF: number, gen: Generator, how: LayerInit = 'torch') {
    super();
    this.weight = this.param('weight', weightInit([outF, inF], inF, how, gen));
    this.bias = this.param('bias', biasInit(outF, inF, how, gen));
  }
  forward(x: Tensor, opts: { activation?: Activation; residual?: Tensor } = {}): Tensor {
    return linear(x, this.weight, this.bias, opts);
  }
}

/** 2-D convolution, square kernel, 'same' padding by default. */
export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(inC: number, outC: number, k: number, gen: Generator, how: LayerInit = 'torch') {
    super();
    const fanIn = inC * k * k;
    this.weight = this.param('weight', weightInit([outC, inC, k, k], fanIn, how, gen));
    this.bias = this.param('bias', biasInit(outC, fanIn, how, gen));
  }
  forward(x: Tensor, stride = 1, padding: number | [number, number, number, number] = (this.weight.shape[2] - 1) / 2): Tensor {
    return conv2d(x, this.weight, this.bias, { stride, padding });
  }
}

/** GroupNorm with affine weight (ones) and bias (zeros); `silu` fuses the activation after it. */
export class GroupNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(readonly groups: number, C: number, readonly eps = 1e-6) {
    super();
    this.weight = this.param('weight', full([C], 1));
    this.bias = this.param('bias', init.zeros([C]));
  }
  forward(x: Tensor, silu = false): Tensor { return groupNorm(x, this.groups, this.weight, this.bias, { eps: this.eps, silu }); }
}

/** LayerNorm over the last axis with affine weight (ones) and bias (zeros). */
export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(D: number, readonly eps = 1e-5) {
    super();
    this.weight = this.param('weight', full([D], 1));
    this.bias = this.param('bias', init.zeros([D]));
  }
  forward(x: Tensor): Tensor { return layerNorm(x, this.weight, this.bias, this.eps); }
}
