import { expect } from 'chai';
import { meanCov, gaussianOf, frechetDistance, type Gaussian } from '../eval/frechet.js';
import { Classifier, classify } from '../eval/classifier.js';
import { realFeatures, evaluateSamples, floorSet } from '../eval/quality.js';
import { classLabels, reconstructionCeiling } from '../eval/samples.js';
import { generateSynthetic, mulberry32 } from '../data/synthetic.js';
import type { ImageDataset } from '../data/dataset.js';
import { AutoencoderKL } from '../vae/model.js';
import { device, randArray } from './helpers.js';

/** A random orthogonal d×d matrix (Gram–Schmidt of Gaussian columns), row-major. */
function orthogonal(d: number, seed: number): Float64Array {
  const a = Float64Array.from(randArray(d * d, seed));
  for (let j = 0; j < d; j++) {
    for (let k = 0; k < j; k++) {
      let dot = 0;
      for (let i = 0; i < d; i++) dot += a[i * d + j] * a[i * d + k];
      for (let i = 0; i < d; i++) a[i * d + j] -= dot * a[i * d + k];
    }
    let n = 0;
    for (let i = 0; i < d; i++) n += a[i * d + j] ** 2;
    for (let i = 0; i < d; i++) a[i * d + j] /= Math.sqrt(n);
  }
  return a;
}

/** Q·diag(v)·Qᵀ. */
function rotated(q: Float64Array, v: number[]): Float64Array {
  const d = v.length, m = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) m[i * d + j] += q[i * d + k] * v[k] * q[j * d + k];
  return m;
}

const gaussian = (mean: number[], cov: ArrayLike<number>): Gaussian => ({ mean: Float64Array.from(mean), cov: Float64Array.from(cov), dim: mean.length });

describe('dit eval: the Fréchet distance and the scores of samples', () => {
  it('equals the closed form for 2×2 covariances that do not commute: tr((AB)^½) = √(tr AB + 2√(det A·det B))', () => {
    const A = [2, 0.7, 0.7, 1], B = [0.5, -0.3, -0.3, 3];
    const AB = [A[0] * B[0] + A[1] * B[2], A[0] * B[1] + A[1] * B[3], A[2] * B[0] + A[3] * B[2], A[2] * B[1] + A[3] * B[3]];
    expect(Math.abs(AB[1] - AB[2]) > 0.1, 'AB is not symmetric: A and B do not commute').to.equal(true);
    const det = (m: number[]) => m[0] * m[3] - m[1] * m[2];
    const trSqrt = Math.sqrt(AB[0] + AB[3] + 2 * Math.sqrt(det(A) * det(B)));
    const mu1 = [0.3, -1.2], mu2 = [1.1, 0.4];
    const want = (mu1[0] - mu2[0]) ** 2 + (mu1[1] - mu2[1]) ** 2 + A[0] + A[3] + B[0] + B[3] - 2 * trSqrt;
    expect(frechetDistance(gaussian(mu1, A), gaussian(mu2, B))).to.be.closeTo(want, 1e-12);
  });

  it('equals ‖Δμ‖² + Σ(√a − √b)² for covariances with the same random eigenvectors (d = 24)', () => {
    const d = 24, q = orthogonal(d, 5), r = mulberry32(9);
    const a = Array.from({ length: d }, () => 0.1 + 3 * r()), b = Array.from({ length: d }, () => 0.1 + 3 * r());
    const mu1 = Array.from(randArray(d, 1)), mu2 = Array.from(randArray(d, 2));
    let want = 0;
    for (let i = 0; i < d; i++) want += (mu1[i] - mu2[i]) ** 2 + (Math.sqrt(a[i]) - Math.sqrt(b[i])) ** 2;
    expect(frechetDistance(gaussian(mu1, rotated(q, a)), gaussian(mu2, rotated(q, b)))).to.be.closeTo(want, 1e-9 * want);
  });

  it('is symmetric, and zero between a Gaussian and itself', () => {
    const x = randArray(300 * 8, 3), y = Float32Array.from(randArray(300 * 8, 4), (v, i) => v * (1 + (i % 8) / 4) + 0.5);
    const g1 = gaussianOf(x, 300, 8), g2 = gaussianOf(y, 300, 8);
    expect(frechetDistance(g1, g1)).to.be.closeTo(0, 1e-9);
    expect(frechetDistance(g1, g2)).to.be.closeTo(frechetDistance(g2, g1), 1e-9);
    expect(frechetDistance(g1, g2)).to.be.greaterThan(1);
  });

  it('mean and covariance are numpy.cov\'s (unbiased, n − 1)', () => {
    const { mean, cov } = meanCov([1, 2, 3, 5, 5, 11], 3, 2);
    expect(Array.from(mean)).to.deep.equal([3, 6]);
    expect(Array.from(cov)).to.deep.equal([4, 9, 9, 21]);
  });

  describe('on the GPU', function () {
    this.timeout(300_000);
    const test = generateSynthetic(0, 1, 400);
    let model: Classifier;
    before(async () => { await device(); model = new Classifier({ channels: 3, classes: 10, widths: [8, 16], imageSize: 32 }, 0); });
    after(() => model.dispose());

    it('samples that are the floor\'s own real images score exactly the floor, and the classifier\'s accuracy on them', async () => {
      const real = await realFeatures(model, test);
      const floor = floorSet(real, classLabels(10, 6), 10);
      const labels = floor.map((i) => real.pool.labels[i]);
      expect([...labels].sort((a, b) => a - b), 'six images of each class').to.deep.equal(classLabels(10, 6));
      const idx = floor.map((i) => real.referenceCount + i), per = 3 * 32 * 32;
      const images = new Uint8Array(idx.length * per);
      idx.forEach((i, k) => images.set(test.images.subarray(i * per, (i + 1) * per), k * per));
      const same: ImageDataset = { ...test, images, labels: Uint8Array.from(labels), count: idx.length };
      const r = await evaluateSamples(model, same, real);
      expect(r.frechet).to.be.closeTo(r.frechet_real, 1e-6 * r.frechet_real);
      const direct = await classify(model, test, idx);
      expect(r.accuracy).to.equal(idx.filter((_, k) => direct.predictions[k] === labels[k]).length / idx.length);
    });

    it('the VAE ceiling scores reconstructions of the floor\'s images: an untrained VAE\'s lie far above the floor', async () => {
      const real = await realFeatures(model, test);
      const vae = new AutoencoderKL({ inChannels: 3, outChannels: 3, blockOutChannels: [8, 16], layersPerBlock: 1, normNumGroups: 4, latentChannels: 4, scalingFactor: 1 }, 0);
      const r = await reconstructionCeiling(model, vae, test, real, 6);
      expect(r.samples).to.equal(60);
      expect(Object.keys(r.per_class)).to.deep.equal(test.classes);
      expect(r.frechet).to.be.greaterThan(5 * r.frechet_real);
      vae.dispose();
    });
  });
});
