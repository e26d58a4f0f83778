// Losses built from the kernel layer's ops (their gradients come from those ops' own rules).
import { Tensor, check, fmtShape } from '../engine/tensor.js';
import { logSoftmax, sum } from '../kernels/reduce.js';
import { mul, scale } from '../kernels/elementwise.js';

/** Mean cross-entropy of logits [B, K] against integer labels: −mean_b log softmax(logits_b)[y_b]. */
export function crossEntropy(logits: Tensor, labels: ArrayLike<number>): Tensor {
  check(logits.ndim === 2 && labels.length === logits.shape[0], 'crossEntropy', `logits ${fmtShape(logits.shape)} need one label per row, got ${labels.length}`);
  const [B, K] = logits.shape;
  const onehot = new Float32Array(B * K);
  for (let b = 0; b < B; b++) {
    check(Number.isInteger(labels[b]) && labels[b] >= 0 && labels[b] < K, 'crossEntropy', `label ${labels[b]} of row ${b} is outside [0, ${K})`);
    onehot[b * K + labels[b]] = 1;
  }
  return scale(sum(mul(logSoftmax(logits), Tensor.from(onehot, [B, K]))), -1 / B);
}
