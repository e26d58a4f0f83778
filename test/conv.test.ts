import { expect } from 'chai';
import { conv2d, upsampleNearest2x, setConvChunkBytes } from '../kernels/conv2d.js';
import { groupNorm } from '../kernels/groupnorm.js';
import { device, randArray, expectClose, gradCheck, read, t } from './helpers.js';
import { conv2d64, groupNorm64 } from './ref.js';

describe('conv2d, groupnorm, upsample', () => {
  before(device);

  const CASES: { B: number; Ci: number; H: number; W: number; Co: number; K: number; s: number; pad: [number, number, number, number] }[] = [
    { B: 2, Ci: 3, H: 9, W: 7, Co: 5, K: 3, s: 1, pad: [1, 1, 1, 1] },
    { B: 1, Ci: 4, H: 8, W: 8, Co: 6, K: 3, s: 2, pad: [0, 1, 0, 1] }, // the VAE's downsample
    { B: 2, Ci: 5, H: 6, W: 10, Co: 3, K: 1, s: 1, pad: [0, 0, 0, 0] },
    { B: 1, Ci: 2, H: 5, W: 5, Co: 4, K: 3, s: 2, pad: [1, 1, 1, 1] },
    { B: 1, Ci: 1, H: 3, W: 17, Co: 1, K: 3, s: 1, pad: [2, 0, 1, 0] },
  ];
  for (const c of CASES) {
    it(`conv2d ${c.K}×${c.K} stride ${c.s} pad [${c.pad}] on [${c.B},${c.Ci},${c.H},${c.W}] → ${c.Co} channels matches float64, with gradients`, async () => {
      const x = randArray(c.B * c.Ci * c.H * c.W, 1), w = randArray(c.Co * c.Ci * c.K * c.K, 2, 0.5), b = randArray(c.Co, 3);
      const ref = conv2d64(x, w, b, c.B, c.Ci, c.H, c.W, c.Co, c.K, c.K, c.s, c.pad);
      const y = conv2d(t(x, [c.B, c.Ci, c.H, c.W]), t(w, [c.Co, c.Ci, c.K, c.K]), t(b, [c.Co]), { stride: c.s, padding: c.pad });
      expect(y.shape).to.deep.equal([c.B, c.Co, ref.Ho, ref.Wo]);
      expectClose(await read(y), ref.out, 2e-6, 'conv2d');
      await gradCheck(([xx, ww, bb]) => conv2d(xx, ww, bb, { stride: c.s, padding: c.pad }), [
        { data: x, shape: [c.B, c.Ci, c.H, c.W] }, { data: w, shape: [c.Co, c.Ci, c.K, c.K] }, { data: b, shape: [c.Co] },
      ], { samples: 8 });
    });
  }

  it('conv2d in chunks (rows split across and within images) equals the unchunked result', async () => {
    const x = randArray(3 * 4 * 7 * 6, 5), w = randArray(5 * 4 * 9, 6), b = randArray(5, 7);
    const run = async () => read(conv2d(t(x, [3, 4, 7, 6]), t(w, [5, 4, 3, 3]), t(b, [5]), { padding: 1 }));
    const whole = await run();
    setConvChunkBytes(4 * 36 * 10); // 10 output pixels per chunk: chunks straddle images
    try {
      expectClose(await run(), whole, 1e-6, 'chunked');
      await gradCheck(([xx, ww]) => conv2d(xx, ww, null, { padding: 1 }), [{ data: x, shape: [3, 4, 7, 6] }, { data: w, shape: [5, 4, 3, 3] }], { samples: 6 });
    } finally {
      setConvChunkBytes(64 * 2 ** 20);
    }
  });

  it('conv2d names the op and shapes on a channel mismatch', () => {
    expect(() => conv2d(t(randArray(2 * 3 * 16, 1), [2, 3, 4, 4]), t(randArray(4 * 2 * 9, 1), [4, 2, 3, 3]))).to.throw(/conv2d: input has 3 channels but the weight \[4,2,3,3\] expects 2/);
  });

  for (const silu of [false, true]) {
    it(`groupNorm (eps 1e-6${silu ? ', fused SiLU' : ''}) matches float64, with gradients`, async () => {
      const B = 2, C = 6, H = 3, W = 5, G = 3;
      const x = randArray(B * C * H * W, 1, 2), w = randArray(C, 2), b = randArray(C, 3);
      let ref = Array.from(groupNorm64(x, B, C, H * W, G, w, b, 1e-6));
      if (silu) ref = ref.map((v) => v / (1 + Math.exp(-v)));
      expectClose(await read(groupNorm(t(x, [B, C, H, W]), G, t(w, [C]), t(b, [C]), { silu })), ref, 3e-6, 'groupNorm');
      await gradCheck(([xx, ww, bb]) => groupNorm(xx, G, ww, bb, { silu }), [{ data: x, shape: [B, C, H, W] }, { data: w, shape: [C] }, { data: b, shape: [C] }], { samples: 8 });
    });
  }

  it('nearest ×2 upsampling repeats pixels in 2×2 blocks; its gradient sums them', async () => {
    const x = t([1, 2, 3, 4, 5, 6], [1, 1, 2, 3]);
    expect(Array.from(await read(upsampleNearest2x(x)))).to.deep.equal([1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6]);
    await gradCheck(([a]) => upsampleNearest2x(a), [{ data: randArray(2 * 3 * 2 * 2, 4), shape: [2, 3, 2, 2] }]);
  });
});
