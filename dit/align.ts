// Representation alignment (REPA, Yu et al. 2024, with iREPA's convolutional projector): the DiT's tokens
// after block `depth` are projected to the teacher's feature width by a 3×3 convolution over the token grid
// and pulled towards the teacher's features of the clean image (each channel normalised over the image's
// tokens; they come with the latent cache, eval/teacher.ts) by cosine similarity. The training loss subtracts
// weight × the mean cosine; after `until` steps (when set) the alignment is switched off, as HASTE does. The
// projector is trained with the DiT and dropped after training: sampling never runs it.
import { Tensor, check, fmtShape } from '../engine/tensor.js';
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/layers.js';
import { permute, reshape } from '../kernels/shape.js';
import { mean } from '../kernels/reduce.js';
import { rowCosine } from '../kernels/cosine.js';
import { Generator, deriveSeed } from '../kernels/random.js';

export interface Alignment {
  /** The block whose output tokens are aligned (1 = after the first block). */
  depth: number;
  /** λ: the loss is the objective's minus λ·mean cosine. */
  weight: number;
  /** Switch the alignment off after this step (null: never). */
  until: number | null;
}

/** The 3×3 convolution from the DiT's width to the teacher's over the token grid, registered as `conv`. */
export class AlignProjector extends Module {
  readonly conv: Conv2d;
  constructor(readonly hidden: number, readonly features: number, seed: number) {
    super();
    this.conv = this.module('conv', new Conv2d(hidden, features, 3, new Generator(deriveSeed(seed, 'alignProjector'))));
    this.nameParameters();
  }

  /** Tokens [B, T, D] of a g×g grid → projections [B·T, F], one row per token. */
  forward(tokens: Tensor): Tensor {
    const [B, T, D] = tokens.shape, g = Math.round(Math.sqrt(T));
    check(tokens.ndim === 3 && D === this.hidden && g * g === T, 'AlignProjector', `tokens must be [B, g·g, ${this.hidden}], got ${fmtShape(tokens.shape)}`);
    const grid = permute(reshape(tokens, [B, g, g, D]), [0, 3, 1, 2]);
    return reshape(permute(this.conv.forward(grid), [0, 2, 3, 1]), [B * T, this.features]);
  }
}

/** The mean cosine similarity of the projected tokens with the teacher's features [B·T, F] (differentiable in the tokens and the projector). */
export function alignmentCosine(projector: AlignProjector, tokens: Tensor, target: Tensor): Tensor {
  return mean(rowCosine(projector.forward(tokens), target));
}

/** Multiply-adds of the projector for one image of T tokens (what alignment adds to a training step's forward). */
export const projectorMultiplyAdds = (tokens: number, hidden: number, features: number) => tokens * hidden * features * 9;
