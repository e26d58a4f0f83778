import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { serve, type Server } from '../web/serve.js';
import { REFERENCE_DIR } from './helpers.js';

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

  it('samples with a progress bar and draws the images', async () => {
    const r = await page.evaluate(() => (window as unknown as { dit: { runSample: (o: object) => Promise<{ images: number; finite: boolean }> } }).dit.runSample({ steps: 5, labels: [0, 1, 2, 3] }));
    expect(r.images).to.equal(4);
    expect(r.finite).to.equal(true);
    expect(await page.locator('#samples canvas').count()).to.equal(4);
    expect(await page.getAttribute('#progress', 'value')).to.equal('5');
    expect(errors).to.deep.equal([]);
  });
});
