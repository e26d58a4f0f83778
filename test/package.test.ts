// The npm package as a user gets it: `npm pack` (which builds first), the tarball installed into a fresh
// project from the npm cache, and from there, by package name: the shipped examples and every TypeScript
// block of the shipped docs and README compiled against the shipped .d.ts and run, a consumer type-checked
// (NodeNext and Bundler resolution), `npx dit --help` and `dit verify` on the official .pt layout, and the
// browser entry points bundled with esbuild for the browser platform (no Node import), then run in headless
// Chromium where one is installed. The fresh project sits beside a link to the reference dumps, so the
// examples' default paths (../shared/reference/…) work as written.
import { expect } from 'chai';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { REFERENCE_DIR } from './helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** The environment for child npm/node processes, without the npm_* variables of a surrounding `npm test`. */
const ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));

function run(cmd: string, args: string[], cwd: string, timeout = 300000): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env: { ...ENV, npm_config_update_notifier: 'false' }, encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  expect(r.status, `${what} failed (status ${r.status}${r.signal ? `, ${r.signal}` : ''}):\n${r.stdout}\n${r.stderr}`).to.equal(0);
  return r.stdout;
}

/** The fenced TypeScript blocks of a Markdown file: ```ts (run in Node) and ```ts browser (bundled for a page). */
function codeBlocks(md: string): { code: string; browser: boolean }[] {
  return [...md.matchAll(/^```ts( browser)?\n([\s\S]*?)^```$/gm)].map((m) => ({ code: m[2], browser: !!m[1] }));
}

interface PackInfo { filename: string; size: number; unpackedSize: number; entryCount: number; files: { path: string }[] }

describe('the npm package, packed and installed in a fresh project', function () {
  this.timeout(600000);
  let work: string, project: string, pkgDir: string, pack: PackInfo;
  const programs: { name: string; file: string }[] = [];
  let browserBlock: string | null = null;
  const browserFiles: string[] = [];

  before(async function () {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'dit-webgpu-package-'));
    project = path.join(work, 'project');
    await fs.mkdir(path.join(work, 'shared'), { recursive: true });
    await fs.symlink(REFERENCE_DIR, path.join(work, 'shared', 'reference'));
    // npm pack runs `prepack` (the build) and prints the script's output before the JSON.
    const out = ok(run('npm', ['pack', '--json', '--pack-destination', work], ROOT), 'npm pack');
    pack = (JSON.parse(out.slice(out.indexOf('[\n'))) as PackInfo[])[0];
    await fs.mkdir(project);
    await fs.writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2));
    ok(run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', path.join(work, pack.filename)], project), 'npm install of the tarball');
    pkgDir = path.join(project, 'node_modules', 'dit-webgpu');

    // The shipped examples and doc blocks, plus a consumer that touches every entry's types, compiled together.
    await fs.mkdir(path.join(project, 'src', 'docs'), { recursive: true });
    for (const f of (await fs.readdir(path.join(pkgDir, 'examples'))).filter((f) => f.endsWith('.ts'))) {
      await fs.copyFile(path.join(pkgDir, 'examples', f), path.join(project, 'src', f));
      programs.push({ name: `examples/${f}`, file: path.join('dist', f.replace(/\.ts$/, '.js')) });
    }
    const mds = ['README.md', ...(await fs.readdir(path.join(pkgDir, 'docs'))).map((f) => `docs/${f}`)];
    for (const md of mds) {
      for (const [i, b] of codeBlocks(await fs.readFile(path.join(pkgDir, md), 'utf8')).entries()) {
        const name = `${md.replace(/[/.]/g, '_')}_${i}`;
        if (b.browser) { browserBlock = b.code; browserFiles.push(`src/docs/${name}.ts`); }
        else programs.push({ name: `${md} block ${i + 1}`, file: path.join('dist', 'docs', `${name}.js`) });
        await fs.writeFile(path.join(project, 'src', 'docs', `${name}.ts`), b.code);
      }
    }
    await fs.writeFile(path.join(project, 'src', 'consumer.ts'), CONSUMER);
    const compilerOptions = {
      target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2023', 'DOM'], strict: true,
      types: ['node'], typeRoots: [path.join(ROOT, 'node_modules/@types')], outDir: 'dist', rootDir: 'src', skipLibCheck: false,
    };
    await fs.writeFile(path.join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions, include: ['src'] }, null, 2));
    await fs.writeFile(path.join(project, 'tsconfig.bundler.json'), JSON.stringify({
      // As a browser app would: bundler resolution, no Node types.
      compilerOptions: { ...compilerOptions, module: 'Preserve', moduleResolution: 'Bundler', noEmit: true, types: [] }, include: ['src/consumer.ts', ...browserFiles],
    }, null, 2));
  });

  after(async () => {
    if (work && !process.env.DIT_KEEP_PACKAGE_TEST) await fs.rm(work, { recursive: true, force: true });
  });

  it('ships the compiled JavaScript with its types for every entry point, the examples and the docs, and no tests', async () => {
    const files = new Set(pack.files.map((f) => f.path));
    const pkg = JSON.parse(await fs.readFile(path.join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, string | Record<string, string>>; bin: Record<string, string> };
    for (const [entry, target] of Object.entries(pkg.exports)) {
      for (const f of typeof target === 'string' ? [target] : Object.values(target)) expect(files.has(f.replace(/^\.\//, '')), `${entry}: ${f} is in the tarball`).to.equal(true);
    }
    for (const f of [...Object.values(pkg.bin), 'README.md', 'CHANGELOG.md', 'docs/engine.md', 'examples/mlp.ts']) expect(files.has(f), f).to.equal(true);
    const stray = [...files].filter((f) => f.startsWith('build/test/') || f.endsWith('.map') || (f.endsWith('.ts') && !f.endsWith('.d.ts') && !f.startsWith('examples/')));
    expect(stray, 'tests, source maps or sources in the tarball').to.deep.equal([]);
    console.log(`      ${pack.filename}: ${(pack.size / 1024).toFixed(0)} KiB packed, ${(pack.unpackedSize / 1024).toFixed(0)} KiB unpacked, ${pack.entryCount} files`);
  });

  it('type-checks the examples, the docs and a consumer against the shipped .d.ts (NodeNext; Bundler without Node types)', () => {
    ok(run(process.execPath, [TSC, '-p', 'tsconfig.json'], project), 'tsc (NodeNext)');
    ok(run(process.execPath, [TSC, '-p', 'tsconfig.bundler.json'], project), 'tsc (Bundler)');
    ok(run(process.execPath, ['dist/consumer.js'], project), 'the consumer');
  });

  it('runs every example and every TypeScript block of the docs, importing the package by name', async function () {
    expect(programs.filter((p) => p.name.startsWith('examples/')).length, 'examples').to.be.at.least(4);
    expect(programs.length, 'programs').to.be.at.least(15);
    for (const p of programs) {
      const t0 = Date.now();
      const r = run(process.execPath, [p.file], project, 180000);
      ok(r, p.name);
      const last = r.stdout.trim().split('\n').pop() ?? '';
      console.log(`      ${p.name} (${((Date.now() - t0) / 1000).toFixed(1)} s): ${last.slice(0, 100)}`);
    }
    // What the examples write.
    for (const f of ['out/samples/grid.png', 'out/samples/0-class0.png', 'out/dit-from-pt.safetensors']) expect(existsSync(path.join(project, f)), f).to.equal(true);
  });

  it('runs `npx dit --help`, and `dit verify` and `dit convert` on the official .pt layout', () => {
    expect(ok(run('npx', ['--no-install', 'dit', '--help'], project), 'npx dit --help')).to.match(/Usage: dit[\s\S]*verify[\s\S]*convert/);
    const v = ok(run('npx', ['--no-install', 'dit', 'verify', '--reference', '../shared/reference/dit_tiny_p2.safetensors', '--weights', '../shared/reference/dit_tiny_p2.pt'], project), 'dit verify');
    expect(v).to.match(/dit-model: \d+ checks, 0 failed, .* PASS/);
    expect(ok(run('npx', ['--no-install', 'dit', 'convert', '../shared/reference/dit_tiny_p2.pt', 'tiny.safetensors', '--heads', '4'], project), 'dit convert')).to.match(/wrote tiny.safetensors/);
  });

  it('bundles `dit-webgpu` and `dit-webgpu/engine` for the browser with esbuild, with no Node module in them', async () => {
    const esbuild = await import('esbuild');
    for (const entry of ['dit-webgpu', 'dit-webgpu/engine']) {
      const r = await esbuild.build({
        stdin: { contents: `export * from '${entry}';`, resolveDir: project, loader: 'js' },
        bundle: true, platform: 'browser', format: 'esm', write: false, metafile: true, logLevel: 'silent', absWorkingDir: project,
      });
      expect(r.errors, entry).to.deep.equal([]);
      const inputs = Object.keys(r.metafile.inputs);
      expect(inputs.some((f) => f.endsWith('build/engine.js')), `${entry} bundled from the tarball`).to.equal(true);
      expect(inputs.filter((f) => /^node:|node_modules\/(webgpu|pngjs|@napi-rs|commander|chart\.js)\/|\/build\/(engine\/node|data\/readers|cli\/)|^(fs|path|zlib|url|child_process)$/.test(f)), `${entry}: Node modules`).to.deep.equal([]);
    }
    // The Node-only entry is not offered to the browser at all.
    const bad = await esbuild.build({ stdin: { contents: "import 'dit-webgpu/node';", resolveDir: project }, bundle: true, platform: 'browser', write: false, logLevel: 'silent' }).catch((e: { errors: { text: string }[] }) => e);
    expect('errors' in bad && bad.errors.length > 0 && bad.errors[0].text, 'dit-webgpu/node in a browser bundle').to.match(/dit-webgpu\/node/);
  });

  it('runs the documented browser block, bundled, in headless Chromium (WebGPU)', async function () {
    if (!browserBlock) throw new Error('docs/README.md has no ```ts browser block');
    const esbuild = await import('esbuild');
    const web = path.join(project, 'web');
    await fs.mkdir(web);
    await fs.writeFile(path.join(web, 'main.ts'), browserBlock);
    await esbuild.build({ entryPoints: [path.join(web, 'main.ts')], outfile: path.join(web, 'bundle.js'), bundle: true, platform: 'browser', format: 'esm', logLevel: 'silent' });
    if (!existsSync(CHROMIUM)) {
      console.log(`      (bundled; not run: no Chromium at ${CHROMIUM})`);
      this.skip();
    }
    const files: Record<string, [string, string]> = {
      '/': [path.join(web, 'index.html'), 'text/html'], '/bundle.js': [path.join(web, 'bundle.js'), 'text/javascript'],
      '/dit_tiny_p2.safetensors': [path.join(REFERENCE_DIR, 'dit_tiny_p2.safetensors'), 'application/octet-stream'],
    };
    await fs.writeFile(files['/'][0], '<!doctype html><meta charset="utf-8"><body><script type="module" src="bundle.js"></script></body>');
    const server = http.createServer(async (req, res) => {
      const f = files[req.url ?? ''];
      if (!f) { res.writeHead(req.url === '/favicon.ico' ? 204 : 404).end(); return; }
      res.writeHead(200, { 'content-type': f[1] }).end(await fs.readFile(f[0]));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--enable-unsafe-webgpu', '--disable-quic'] });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
      await page.goto(`http://127.0.0.1:${(server.address() as { port: number }).port}/`);
      await page.waitForSelector('canvas', { timeout: 120000 }).catch(() => undefined);
      expect(errors, 'page errors').to.deep.equal([]);
      expect(await page.evaluate(() => { const c = document.querySelector('canvas'); return c ? [c.width, c.height] : null; })).to.deep.equal([16, 16]);
    } finally {
      await browser.close();
      await new Promise((r) => server.close(r));
    }
  });
});

/** A small consumer: every entry point, its main types, and the error classes in catch clauses. */
const CONSUMER = `import { getDevice, closeDevice, Tensor, DitError, ShapeError, DeviceError, CheckpointError, DisposedTensorError, DiT, GaussianDiffusion, AutoencoderKL, type Gpu, type DiTConfig } from 'dit-webgpu';
import * as engine from 'dit-webgpu/engine';
import { DiT as DiT2, ditConfig, readWeights, weightsFromBytes, type WeightSet } from 'dit-webgpu/dit';
import { generate, sampleLoop, type LoopOptions } from 'dit-webgpu/diffusion';
import { loadVae, vaeFromBytes, SD_VAE_FT_MSE, type VaeConfig } from 'dit-webgpu/vae';
import { writePng, readFileBytes, writeFileAtomic } from 'dit-webgpu/node';

const config: DiTConfig = ditConfig('DiT-XL/2');
const vaeConfig: VaeConfig = SD_VAE_FT_MSE;
const opts: LoopOptions = { sampler: 'ddim', cfgScale: 4 };
const same: typeof DiT = DiT2;
const fns = [readWeights, weightsFromBytes, generate, sampleLoop, loadVae, vaeFromBytes, writePng, readFileBytes, writeFileAtomic, GaussianDiffusion, AutoencoderKL, engine.matmul, engine.backward];
const classes: (typeof DitError)[] = [ShapeError, DeviceError, CheckpointError, DisposedTensorError, engine.SafetensorsError, engine.TorchLoadError];

function describe(e: unknown): string {
  if (e instanceof ShapeError) return 'shape: ' + e.op;
  if (e instanceof CheckpointError) return 'file: ' + e.file;
  if (e instanceof DitError) return e.name;
  return String(e);
}

const g: Gpu = await getDevice();
try {
  engine.matmul(Tensor.from([1, 2], [1, 2]), Tensor.from([1, 2, 3], [3, 1]));
} catch (e) {
  if (describe(e) !== 'shape: matmul') throw new Error('expected a ShapeError from matmul, got ' + describe(e));
}
const w: WeightSet | null = null;
console.log(g.adapter.description || 'adapter', config.hiddenSize, vaeConfig.latentChannels, opts.sampler, same === DiT, fns.length, classes.length, w);
await closeDevice();
`;
