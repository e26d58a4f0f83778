// Class-conditional samples from a DiT checkpoint into PNGs: DDIM with classifier-free guidance.
// Run: node sample-dit.js [weights.safetensors|.pt] [out-dir, default out/samples]
// The default is the tiny reference model (no VAE: its 4-channel latents are written as images, first three
// channels min–max scaled). With a VAE, sampleImages(model, vae, scale, labels, classes) decodes to pixels.
import { getDevice, closeDevice, readWeights, ditFromWeights, GaussianDiffusion, generate, toImage, imageGrid } from 'dit-webgpu';
import { writePng } from 'dit-webgpu/node';

const [weights = '../shared/reference/dit_tiny_p2.safetensors', outDir = 'out/samples'] = process.argv.slice(2);
await getDevice();
const model = ditFromWeights(await readWeights(weights)).eval();
const c = model.config;
const diffusion = new GaussianDiffusion({ respacing: 'ddim25', learnSigma: c.learnSigma });
const labels = [0, 1, 2, 3];
const z = await generate(model, diffusion, labels, [c.inChannels, c.inputSize, c.inputSize], {
  sampler: 'ddim', cfgScale: 4, nullLabel: c.numClasses, seed: 0,
});
const data = await z.data(), per = c.inChannels * c.inputSize * c.inputSize;
const images = labels.map((_, i) => toImage(data.subarray(i * per, (i + 1) * per), c.inChannels, c.inputSize, c.inputSize, 'minmax'));
for (const [i, img] of images.entries()) await writePng(`${outDir}/${i}-class${labels[i]}.png`, img);
await writePng(`${outDir}/grid.png`, imageGrid(images, labels.length, 4));
console.log(`wrote ${images.length} samples and grid.png to ${outDir}/`);
await closeDevice();
