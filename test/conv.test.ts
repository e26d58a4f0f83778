// conv2d beyond the registry's float64 checks (test/kernels.test.ts): chunked processing and errors.
import { expect } from 'chai';
import { conv2d, setConvChunkBytes, CONV2D_VARIANTS, conv2dUnsupported, type Conv2dProblem } from '../kernels/conv2d.js';
import { family, forwardError, gradientError, GRADIENT_TOLERANCE, randomNormal } from '../kernels/registry.js';
import { device, t } from './helpers.js';

describe('conv2d', () => {
  before(device);

  it('in chunks (rows split across and within images) every variant still matches float64, forward and backward', async function () {
    const conv = family('conv2d');
    const p: Conv2dProblem = { B: 3, Ci: 4, H: 7, W: 6, Co: 5, KH: 3, KW: 3, stride: 1, pad: [1, 1, 1, 1], bias: true };
    const strided: Conv2dProblem = { ...p, stride: 2, pad: [0, 1, 0, 1] };
    setConvChunkBytes(4 * 36 * 10); // 10 output pixels per chunk: chunks straddle images
    try {
      let ran = 0;
      for (const v of CONV2D_VARIANTS) {
        if (conv2dUnsupported(v)) continue;
        for (const q of [p, strided]) {
          expect((await forwardError(conv, q, v)).error, `${v} ${conv.describe(q)}`).to.be.at.most(conv.tolerance(q));
          expect((await gradientError(conv, q, v))!.error, `${v} ${conv.describe(q)} gradients`).to.be.at.most(GRADIENT_TOLERANCE);
        }
        ran++;
      }
      if (!ran) this.skip();
    } finally {
      setConvChunkBytes(64 * 2 ** 20);
    }
  });

  it('names the op and shapes on a channel mismatch', () => {
    expect(() => conv2d(t(randomNormal(2 * 3 * 16, 1), [2, 3, 4, 4]), t(randomNormal(4 * 2 * 9, 1), [4, 2, 3, 3]))).to.throw(/conv2d: input has 3 channels but the weight \[4,2,3,3\] expects 2/);
  });
});
