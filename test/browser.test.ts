import { expect } from 'chai';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { serve, type Server } from '../web/serve.js';
import { readFileBytes } from '../engine/node.js';
import { Safetensors, TensorSource, openTensors, serializeSafetensors, readSafetensors } from '../engine/safetensors.js';
import { scope, noGrad } from '../engine/tensor.js';
import { weightsFromSource, ditFromWeights } from '../dit/checkpoint.js';
import { vaeFromBytes } from '../vae/checkpoint.js';
import { GaussianDiffusion } from '../diffusion/gaussian.js';
import { generate } from '../diffusion/sample.js';
import { device, REFERENCE_DIR } from './helpers.js';

/** One safetensors file of the reference VAE's sharded weights, with its config in the metadata (as the page reads a VAE). */
async function vaeFile(): Promise<Uint8Array> {
  const src = await openTensors(path.join(REFERENCE_DIR, 'vae', 'vae_a.weights.index.json'));
  const { metadata } = await readSafetensors(path.join(REFERENCE_DIR, 'vae', 'vae_a.safetensors'));
  const chunks = serializeSafetensors(Object.fromEntries(src.keys().map((k) => [k, { shape: src.shape(k), data: src.f32(k) }])), { config: metadata.config });
  return Buffer.concat(chunks);
}

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

describe('the browser page (headless Chromium, WebGPU on SwiftShader)', function () {
  this.timeout(300000);
  let server: Server;
  let browser: import('playwright-core').Browser;
  let page: import('playwright-core').Page;
  const errors: string[] = [];

  before(async function () {
    if (!existsSync(CHROMIUM)) {
      console.log(`    (skipped: no Chromium at ${CHROMIUM}; scripts/setup.sh installs Debian's chromium)`);
      this.skip();
    }
    server = await serve(0, REFERENCE_DIR);
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--enable-unsafe-webgpu', '--disable-quic'] });
    page = await browser.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error' && !/404/.test(m.text())) errors.push(m.text()); });
    // Missing files are fine only where the page probes for optional trained models (../out/) or the icon.
    page.on('response', (r) => { if (r.status() >= 400 && !/\/out\/|favicon/.test(r.url())) errors.push(`${r.status()} ${r.url()}`); });
    await page.goto(`${server.url}/web/index.html`);
    await page.waitForSelector('body[data-ready]', { timeout: 120000 });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('finds a WebGPU adapter and loads the engine as ES modules', async () => {
    expect(await page.getAttribute('body', 'data-ready')).to.equal('1');
    const text = await page.textContent('#adapter-info');
    expect(text).to.match(/subgroup size/);
    expect(errors).to.deep.equal([]);
  });

  it('reproduces the official PyTorch outputs in the browser (forward and guided, ≤ 1e-4)', async () => {
    const r = await page.evaluate(() => (window as unknown as { dit: { runParity: () => Promise<{ forward: number; cfg: number; pass: boolean }> } }).dit.runParity());
    expect(r.forward).to.be.lessThan(1e-4);
    expect(r.cfg).to.be.lessThan(1e-4);
    // and through the button, as a person would
    await page.click('#run-parity');
    await page.waitForFunction(() => /PASS|FAIL/.test(document.getElementById('parity')!.textContent ?? ''), null, { timeout: 120000 });
    expect(await page.textContent('#parity')).to.match(/PASS/);
  });

  it('samples with a progress bar and draws the images Node draws for the same checkpoint and seed', async () => {
    // The page samples with the models it finds under ../out/: serve it the reference DiT and VAE there.
    const ditBytes = await readFileBytes(path.join(REFERENCE_DIR, 'dit_tiny_p2.safetensors'));
    const vaeBytes = await vaeFile();
    await page.route('**/out/dit-small.safetensors', (r) => r.fulfill({ status: 200, body: Buffer.from(ditBytes) }));
    await page.route('**/out/vae-small.safetensors', (r) => r.fulfill({ status: 200, body: Buffer.from(vaeBytes) }));
    const opts = { steps: 5, cfg: 4, seed: 3, labels: [0, 1, 2, 3] };
    const r = await page.evaluate((o) => (window as unknown as { dit: { runSample: (o: object) => Promise<{ images: number; finite: boolean; trained: boolean }> } }).dit.runSample(o), opts);
    expect(r).to.deep.include({ images: 4, finite: true, trained: true });
    expect(await page.locator('#samples canvas').count()).to.equal(4);
    expect(await page.getAttribute('#progress', 'value')).to.equal('5');
    const drawn = await page.evaluate(() => Array.from(document.querySelectorAll<HTMLCanvasElement>('#samples canvas'), (c) => Array.from(c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data)));

    // The same in Node, on this process's adapter, sampled as the page samples (DDIM over `steps` respaced steps).
    await device();
    const st = new Safetensors(ditBytes, 'dit_tiny_p2.safetensors');
    const dit = ditFromWeights({ tensors: weightsFromSource(new TensorSource([st], new Map(st.keys().map((k) => [k, st])), st.source)), metadata: st.metadata, source: st.source });
    const vae = vaeFromBytes(vaeBytes, 'vae-small.safetensors');
    dit.eval();
    const c = dit.config;
    const z = await generate(dit, new GaussianDiffusion({ respacing: `ddim${opts.steps}`, learnSigma: c.learnSigma }), opts.labels, [c.inChannels, c.inputSize, c.inputSize], { sampler: 'ddim', cfgScale: opts.cfg, seed: opts.seed, nullLabel: c.numClasses });
    const img = scope(() => noGrad(() => vae.decode(z)));
    const [, C, H, W] = img.shape;
    const data = await img.data() as Float32Array;
    for (const t of [z, img]) t.dispose();
    dit.dispose(); vae.dispose();
    // The page draws a decoded image's values in [−1, 1] as bytes: round(255·(v + 1)/2), clamped.
    let worst = 0;
    drawn.forEach((rgba, i) => {
      expect(rgba.length).to.equal(4 * H * W);
      for (let p = 0; p < H * W; p++) for (let ch = 0; ch < 3; ch++) {
        const want = Math.max(0, Math.min(255, Math.round((255 * (data[(i * C + Math.min(ch, C - 1)) * H * W + p] + 1)) / 2)));
        worst = Math.max(worst, Math.abs(rgba[p * 4 + ch] - want));
      }
    });
    expect(new Set(drawn.flat()).size, 'distinct byte values drawn (not a blank or saturated image)').to.be.greaterThan(32);
    expect(worst, 'largest difference of a drawn byte from Node\'s image (1: rounding)').to.be.at.most(1);
    expect(errors).to.deep.equal([]);
  });
});
