// The browser page end to end in headless Chromium (WebGPU on its SwiftShader adapter), sized for a software
// adapter: train a tiny DiT in the page, sample a fixed checkpoint as Node does, evaluate, the kernel
// registry, and the errors a person sees. `npm run test:browser`; screenshots go to out/browser/.
import { expect } from 'chai';
import { existsSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import * as path from 'node:path';
import { serve, type Server } from '../web/serve.js';
import { readFileBytes } from '../engine/node.js';
import { openTensors, serializeSafetensors, readSafetensors } from '../engine/safetensors.js';
import { weightsFromBytes, ditFromWeights } from '../dit/checkpoint.js';
import { RECIPES } from '../dit/recipes.js';
import { OFFICIAL_OBJECTIVE } from '../diffusion/objective.js';
import { vaeFromBytes } from '../vae/checkpoint.js';
import { sampleImages } from '../eval/samples.js';
import { toImage, grid } from '../data/png.js';
import { device, REFERENCE_DIR } from './helpers.js';

/** One safetensors file of the reference VAE's sharded weights, with its config in the metadata (as the page reads a VAE). */
async function vaeFile(): Promise<Uint8Array> {
  const src = await openTensors(path.join(REFERENCE_DIR, 'vae', 'vae_a.weights.index.json'));
  const { metadata } = await readSafetensors(path.join(REFERENCE_DIR, 'vae', 'vae_a.safetensors'));
  const chunks = serializeSafetensors(Object.fromEntries(src.keys().map((k) => [k, { shape: src.shape(k), data: src.f32(k) }])), { config: metadata.config });
  return Buffer.concat(chunks);
}

/** The status of a GET of `rawPath` sent as it is (fetch would resolve `..` before sending). */
function statusOf(url: string, rawPath: string): Promise<number> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    http.get({ host: u.hostname, port: u.port, path: rawPath }, (r) => { r.resume(); resolve(r.statusCode ?? 0); }).on('error', reject);
  });
}

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARGS = ['--enable-unsafe-webgpu', '--disable-quic'];
const SHOTS = path.resolve('out', 'browser');

type PageApi = {
  runParity: () => Promise<{ forward: number; cfg: number; pass: boolean }>;
  runKernelChecks: (o: { families?: string[] }) => Promise<{ family: string; variant: string; ran: number; failures: string[] }[]>;
  trainState: () => { running: boolean; paused: boolean; step: number; total: number; losses: { step: number; loss: number }[]; stepsPerSec: number; pictures: number; error: string | null };
  runEvaluate: (o: object) => Promise<{ accuracy: number; frechet: number; frechet_real: number; samples: number }>;
};

describe('the browser page (headless Chromium, WebGPU on SwiftShader)', function () {
  this.timeout(600000);
  let server: Server;
  let browser: import('playwright-core').Browser;
  let page: import('playwright-core').Page;
  const errors: string[] = [];
  const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, name), fullPage: true });

  before(async function () {
    if (!existsSync(CHROMIUM)) {
      console.log(`    (skipped: no Chromium at ${CHROMIUM}; scripts/setup.sh installs Debian's chromium)`);
      this.skip();
    }
    mkdirSync(SHOTS, { recursive: true });
    server = await serve(0, REFERENCE_DIR);
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
    page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    // A click or file pick waits for the page's thread, which a software adapter on a busy machine can hold for long.
    page.setDefaultTimeout(180000);
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('response', (r) => { if (r.status() >= 400) errors.push(`${r.status()} ${r.url()}`); });
    await page.goto(`${server.url}/`);
    await page.waitForSelector('body[data-ready]', { timeout: 120000 });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('serves only the page, its bundle, out/, weights/ and the reference dumps, on 127.0.0.1', async () => {
    expect(server.url).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    for (const p of ['/', '/index.html', '/bundle.js', '/weights/vae-synthetic.safetensors', '/reference/dit_tiny_p2.safetensors']) expect(await statusOf(server.url, p), p).to.equal(200);
    const refused = ['/.git/HEAD', '/package.json', '/web/serve.ts', '/build/web/serve.js', '/weights/../package.json', '/weights/%2e%2e/package.json',
      '/weights/..%2f..%2fpackage.json', '/reference/../../main/package.json', '/weights-x/a', '/out/../.git/config', '/%2e%2e/package.json'];
    for (const p of refused) expect(await statusOf(server.url, p), p).to.equal(404);
  });

  it('finds a WebGPU adapter and loads the bundled page, showing the shipped DiT\'s samples, one per class', async () => {
    expect(await page.getAttribute('body', 'data-ready')).to.equal('1');
    expect(await page.textContent('#adapter-info')).to.match(/subgroup size/);
    expect(await page.textContent('#sample-status')).to.match(/^the shipped DiT \(weights\/dit-synthetic\.safetensors\): 10 samples, heun 12 steps, guidance 4/);
    expect(errors).to.deep.equal([]);
  });

  it('reproduces the official PyTorch outputs in the browser (forward and guided, ≤ 1e-4)', async () => {
    const r = await page.evaluate(() => (window as unknown as { dit: PageApi }).dit.runParity());
    expect(r.forward).to.be.lessThan(1e-4);
    expect(r.cfg).to.be.lessThan(1e-4);
    await page.click('#run-parity');
    await page.waitForFunction(() => /PASS|FAIL/.test(document.getElementById('parity')!.textContent ?? ''), null, { timeout: 120000 });
    expect(await page.textContent('#parity')).to.match(/PASS/);
  });

  it('passes the kernel registry\'s cases in the page (the list the Node kernel tests check)', async () => {
    // Every family (about 3 minutes alone on 2 cores with SwiftShader); DIT_BROWSER_KERNELS=a,b picks some.
    const families = process.env.DIT_BROWSER_KERNELS?.split(',');
    const t0 = performance.now();
    const rows = await page.evaluate((f) => (window as unknown as { dit: PageApi }).dit.runKernelChecks({ families: f }), families);
    const ran = rows.filter((r) => r.ran);
    console.log(`        ${ran.length} of ${rows.length} variants of ${new Set(rows.map((r) => r.family)).size} families ran in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    const failed = rows.filter((r) => r.failures.length);
    expect(failed.map((r) => `${r.family} ${r.variant}: ${r.failures.join('; ')}`)).to.deep.equal([]);
    expect(ran.length).to.be.greaterThan(families ? 5 : 20);
    expect(errors).to.deep.equal([]);
  });

  it('trains the tiny preset in the page: the loss falls, steps/s and an ETA show, pause holds it, and the checkpoint it downloads is one Node reads', async () => {
    const steps = 60;
    await page.selectOption('#preset', 'tiny');
    await page.fill('#train-steps', String(steps));
    await page.fill('#train-images', '512');
    await page.fill('#sample-every', '30');
    await page.click('#train');
    const state = () => page.evaluate(() => (window as unknown as { dit: PageApi }).dit.trainState());
    await page.waitForFunction(() => { const s = (window as unknown as { dit: PageApi }).dit.trainState(); return s.step >= 20 || s.error !== null; }, null, { timeout: 300000, polling: 200 });
    expect((await state()).error).to.equal(null);
    await page.click('#pause');
    await page.waitForFunction(() => /paused at step/.test(document.getElementById('train-status')!.textContent ?? ''), null, { timeout: 120000 });
    const held = (await state()).step;
    await page.waitForTimeout(1500);
    expect((await state()).step, 'no steps while paused').to.equal(held);
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#download-ckpt')]);
    const file = path.join(SHOTS, `tiny-step${held}.safetensors`);
    await dl.saveAs(file);
    await page.click('#pause');
    await page.waitForFunction((n) => { const s = (window as unknown as { dit: PageApi }).dit.trainState(); return (!s.running && s.step === n) || s.error !== null; }, steps, { timeout: 400000, polling: 500 });
    const s = await state();
    expect(s.error).to.equal(null);
    await shot('train.png');
    const first = s.losses.slice(0, 2).reduce((a, b) => a + b.loss, 0) / 2, last = s.losses.slice(-3).reduce((a, b) => a + b.loss, 0) / 3;
    console.log(`        tiny preset in the page: ${s.stepsPerSec.toFixed(2)} steps/s, loss ${s.losses.map((l) => l.loss.toFixed(3)).join(' ')} (first two ${first.toFixed(3)} → last three ${last.toFixed(3)}), ${s.pictures} sample pictures`);
    expect(s.losses.every((l) => Number.isFinite(l.loss))).to.equal(true);
    expect(last, 'mean loss of the last three logged steps vs the first two').to.be.lessThan(0.8 * first);
    expect(s.stepsPerSec).to.be.greaterThan(0);
    expect(s.pictures).to.equal(2);
    expect(await page.textContent('#train-speed')).to.match(/steps\/s · ETA/);

    // The download is a training checkpoint `dit sample` / `dit eval` read (EMA weights by default).
    const w = await weightsFromBytes(await readFileBytes(file), file);
    expect(w.metadata).to.include({ format: 'dit-webgpu-train', weights: 'ema', step: String(held), preset: 'tiny', dataset: 'synthetic' });
    expect(JSON.parse(w.metadata.recipe).objective, 'the recipe it was trained with, as dit train records it').to.deep.equal(RECIPES.tiny.objective);
    await device();
    const model = ditFromWeights(w);
    expect(model.config).to.include({ ...RECIPES.tiny.model, inputSize: 8, inChannels: 4, numClasses: 10 });
    model.dispose();
    expect(errors).to.deep.equal([]);
  });

  it('evaluates the trained model with the shipped judge: accuracy and Fréchet distance beside its floor', async () => {
    const r = await page.evaluate(() => (window as unknown as { dit: PageApi }).dit.runEvaluate({ perClass: 2, real: 100, steps: 10 }));
    console.log(`        judge's accuracy ${(100 * r.accuracy).toFixed(0)}%, Fréchet ${r.frechet.toFixed(2)} (floor ${r.frechet_real.toFixed(2)}) on ${r.samples} samples`);
    expect(r.samples).to.equal(20);
    expect(r.accuracy).to.be.within(0, 1);
    expect(r.frechet).to.be.a('number').and.to.be.at.least(0);
    expect(Number.isFinite(r.frechet_real)).to.equal(true);
    expect(await page.textContent('#eval-result')).to.match(/Fréchet distance/);
    await shot('evaluate.png');
    expect(errors).to.deep.equal([]);
  });

  it('samples a picked checkpoint with x̂0 previews and draws the grid Node draws for the same checkpoint, VAE and seed (≤ 1 per byte)', async () => {
    const ditBytes = await readFileBytes(path.join(REFERENCE_DIR, 'dit_tiny_p2.safetensors'));
    const vaeBytes = await vaeFile();
    await page.setInputFiles('#ckpt-file', { name: 'dit_tiny_p2.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from(ditBytes) });
    await page.waitForFunction(() => /^dit_tiny_p2\.safetensors: DiT/.test(document.getElementById('ckpt-info')!.textContent ?? ''), null, { timeout: 60000 });
    await page.setInputFiles('#sample-vae-file', { name: 'vae_a.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from(vaeBytes) });
    await page.waitForFunction(() => /VAE: vae_a\.safetensors/.test(document.getElementById('ckpt-info')!.textContent ?? ''), null, { timeout: 60000 });
    const opts = { steps: 10, cfg: 4, seed: 3, labels: [0, 1, 2, 3] };
    await page.fill('#labels', opts.labels.join(','));
    await page.fill('#steps', String(opts.steps));
    await page.fill('#cfg', String(opts.cfg));
    await page.fill('#seed', String(opts.seed));
    await page.selectOption('#sampler', 'ddim');
    await page.click('#run-sample');
    await page.waitForFunction(() => /samples, ddim|Error|rror/.test(document.getElementById('sample-status')!.textContent ?? ''), null, { timeout: 300000 });
    expect(await page.textContent('#sample-status')).to.match(/^4 samples, ddim 10 steps/);
    expect(await page.getAttribute('#progress', 'value')).to.equal('10');
    const drawn = await page.evaluate(() => { const c = document.getElementById('sample-grid') as HTMLCanvasElement; return { w: c.width, h: c.height, rgba: Array.from(c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data) }; });
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#download-png')]);
    await dl.saveAs(path.join(SHOTS, 'samples.png'));
    await shot('sample.png');

    // The same in Node on this process's adapter, with the same function (eval/samples.ts) and grid.
    await device();
    const w = await weightsFromBytes(ditBytes, 'dit_tiny_p2.safetensors');
    const dit = ditFromWeights(w);
    const vae = vaeFromBytes(vaeBytes, 'vae_a.safetensors');
    // No recipe in the file: the official objective and guidance on the first three channels, the form's sampler, steps and scale.
    const d = await sampleImages(dit, vae, vae.config.scalingFactor, opts.labels, [], { objective: OFFICIAL_OBJECTIVE, sampling: { sampler: 'ddim', steps: opts.steps, cfg: opts.cfg, guide: 'official' }, seed: opts.seed });
    dit.dispose(); vae.dispose();
    const per = d.channels * d.height * d.width;
    const want = grid(Array.from({ length: d.count }, (_, i) => toImage(Float32Array.from(d.images.subarray(i * per, (i + 1) * per), (v) => v / 127.5 - 1), d.channels, d.height, d.width)), 4, 3);
    expect([drawn.w, drawn.h]).to.deep.equal([want.width, want.height]);
    let worst = 0;
    for (let i = 0; i < want.rgba.length; i++) worst = Math.max(worst, Math.abs(drawn.rgba[i] - want.rgba[i]));
    expect(new Set(drawn.rgba).size, 'distinct byte values drawn (not a blank or saturated image)').to.be.greaterThan(32);
    expect(worst, 'largest difference of a drawn byte from Node\'s grid (1: rounding on another adapter)').to.be.at.most(1);
    expect(errors).to.deep.equal([]);
  });

  it('says which file is not a checkpoint and stays usable', async () => {
    const junk = Buffer.alloc(4096);
    junk.writeBigUInt64LE(1n << 40n, 0);
    await page.setInputFiles('#ckpt-file', { name: 'corrupt.safetensors', mimeType: 'application/octet-stream', buffer: junk });
    await page.waitForFunction(() => /corrupt\.safetensors/.test(document.getElementById('ckpt-info')!.textContent ?? ''), null, { timeout: 60000 });
    const msg = await page.textContent('#ckpt-info .bad');
    expect(msg).to.match(/^Not a checkpoint this page can read — corrupt\.safetensors: truncated or not safetensors/);
    await shot('corrupt-file.png');
    // The previous model stays loaded and every control works.
    expect(await page.isEnabled('#run-sample')).to.equal(true);
    expect(await page.isEnabled('#ckpt-file')).to.equal(true);
    expect(await page.isEnabled('#train')).to.equal(true);
  });

  it('says so when the browser offers no WebGPU, and disables the controls', async () => {
    const { chromium } = await import('playwright-core');
    const plain = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--disable-quic', '--disable-features=WebGPU'] });
    try {
      const p = await plain.newPage();
      await p.goto(`${server.url}/`);
      await p.waitForSelector('body[data-ready]', { timeout: 60000 });
      expect(await p.getAttribute('body', 'data-ready')).to.equal('error');
      expect(await p.textContent('#env-error')).to.match(/no WebGPU|gave no adapter/);
      expect(await p.isDisabled('#train')).to.equal(true);
      await p.screenshot({ path: path.join(SHOTS, 'no-webgpu.png') });
    } finally {
      await plain.close();
    }
  });
});
