// Hostile and edge inputs through the `dit` commands and the page server, as issue 29 tried them: each case
// checks the exit code (docs/cli.md: 2 for a usage or input error found before any GPU work, 3 for training
// stopped on non-finite values), that the message names the file or flag, that no temporary `*.tmp-*` file
// is left, and that every file that was there before is byte-identical afterwards. Cases that must stop
// before any GPU work run with no WebGPU adapter at all (VK_ICD_FILENAMES points nowhere).
import { expect } from 'chai';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs, readFileSync, readdirSync, symlinkSync } from 'node:fs';
import http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors, serializeSafetensors, type StWriteTensor } from '../engine/safetensors.js';
import { writeFileAtomic } from '../engine/node.js';
import { NonFiniteError } from '../engine/errors.js';
import { gpu } from '../engine/device.js';
import type { Tensor } from '../engine/tensor.js';
import { DiT } from '../dit/model.js';
import { DiTTrainer } from '../dit/train.js';
import { OFFICIAL_OBJECTIVE } from '../diffusion/objective.js';
import { AutoencoderKL, SMALL_VAE_32 } from '../vae/model.js';
import { saveVae } from '../vae/train.js';
import { Classifier, saveClassifier } from '../eval/classifier.js';
import { writePng } from '../data/png.js';
import { serve, type Server } from '../web/serve.js';
import { patternCache, patternLatents } from './latents.js';
import { device, randArray, REFERENCE_DIR, trainConfig } from './helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DIT = path.join(ROOT, 'build/cli/dit.js');
const NO_GPU = { VK_ICD_FILENAMES: '/nonexistent/icd.json' };
const TINY = ['--hidden', '16', '--depth', '1', '--heads', '2', '--patch', '2', '--batch', '4', '--sample-every', '0'];

const out = (r: SpawnSyncReturns<string>) => `exit ${r.status ?? r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

/** Every file under `dir` (relative path → SHA-1 of its bytes). */
function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) files.set(path.relative(dir, p), createHash('sha1').update(readFileSync(p)).digest('hex'));
    }
  };
  walk(dir);
  return files;
}

/** A safetensors file from raw entries (any dtype, bytes as given) and metadata, as another tool might write it. */
function rawSafetensors(entries: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[], metadata: Record<string, string>): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let off = 0;
  for (const e of entries) { header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [off, off + e.bytes.byteLength] }; off += e.bytes.byteLength; }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.byteLength));
  return Buffer.concat([len, json, ...entries.map((e) => Buffer.from(e.bytes))]);
}

/** An IDX file of unsigned bytes (Fashion-MNIST's format). */
function idx(dims: number[], data: Uint8Array): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head.writeUInt32BE(0x800 + dims.length, 0);
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(data)]);
}

describe('hostile inputs (issue 29): nothing lost, nothing exposed', function () {
  this.timeout(600_000);
  /** The work folder: every case runs in it and must leave its files as they were. */
  let W = '';

  function dit(args: string[], o: { gpu?: boolean } = {}): SpawnSyncReturns<string> {
    return spawnSync(process.execPath, [DIT, ...args], { cwd: W, env: { ...process.env, ...(o.gpu ? {} : NO_GPU) }, encoding: 'utf8', timeout: 300_000 });
  }

  /**
   * Runs `dit args` and checks what a refused input gets: exit `code`, a message matching each of `says`, no
   * `*.tmp-*` left, and the work folder's files exactly as before (none changed, none added).
   */
  function refused(args: string[], code: number, says: RegExp[], o: { gpu?: boolean } = {}): SpawnSyncReturns<string> {
    const before = snapshot(W);
    const r = dit(args, o);
    expect(r.status, `dit ${args.join(' ')}\n${out(r)}`).to.equal(code);
    for (const re of says) expect(r.stderr, `dit ${args.join(' ')}: the message\n${out(r)}`).to.match(re);
    expect(r.stderr, 'no stack trace').to.not.match(/^\s+at /m);
    const after = snapshot(W);
    expect([...after.keys()].filter((f) => f.includes('.tmp-')), 'temporary files left').to.deep.equal([]);
    expect(Object.fromEntries(after), `dit ${args.join(' ')}: the work folder's files`).to.deep.equal(Object.fromEntries(before));
    return r;
  }

  before(async function () {
    await device();
    W = await fs.mkdtemp(path.join(os.tmpdir(), 'dit-hostile-'));
    // A 2-class latent cache and a 2-step run on it (no VAE).
    await writeFileAtomic(path.join(W, 'lat.safetensors'), patternCache([randArray(256, 1), randArray(256, 2)], [4, 8, 8], 16, 0.1, ['a', 'b'], {}, 8));
    const r = dit(['train', '--latents', 'lat.safetensors', ...TINY, '--steps', '2', '--run', 'run'], { gpu: true });
    expect(r.status, out(r)).to.equal(0);
    // A PNG-folder dataset (2 classes × 2 RGB 32×32 images), a grey Fashion-MNIST-format one, the shipped VAE, the tiny .pt.
    for (const [k, c] of ['a', 'b'].entries()) {
      for (let i = 0; i < 2; i++) {
        const rgba = Uint8Array.from({ length: 32 * 32 * 4 }, (_, j) => (j % 4 === 3 ? 255 : (j * 7 + i * 13 + k * 100) % 256));
        await writePng(path.join(W, 'folder', c, `${i}.png`), { width: 32, height: 32, rgba });
      }
    }
    await fs.mkdir(path.join(W, 'fm'));
    for (const p of ['train', 't10k']) {
      await fs.writeFile(path.join(W, 'fm', `${p}-images-idx3-ubyte`), idx([4, 28, 28], Uint8Array.from({ length: 4 * 784 }, (_, j) => j % 251)));
      await fs.writeFile(path.join(W, 'fm', `${p}-labels-idx1-ubyte`), idx([4], Uint8Array.of(0, 1, 2, 3)));
    }
    await fs.copyFile(path.join(ROOT, 'weights', 'vae-synthetic.safetensors'), path.join(W, 'v.safetensors'));
    await fs.copyFile(path.join(REFERENCE_DIR, 'dit_tiny_p2.pt'), path.join(W, 'x.pt'));
  });
  after(async () => { if (W) await fs.rm(W, { recursive: true, force: true }); });

  const ckpt = () => path.join('run', 'checkpoints', 'step-2.safetensors');

  describe('1. no trainer saves non-finite weights: it stops (exit 3) and the last good file stays', () => {
    it('`dit vae train --resume F --out F --lr 1e30` (the help\'s in-place example, diverging) keeps F', () => {
      refused(['vae', 'train', '--data', 'folder:folder', '--resume', 'v.safetensors', '--out', 'v.safetensors', '--lr', '1e30', '--steps', '2', '--batch', '2', '--eval-images', '2'], 3,
        [/non-finite|NaN/, /v\.safetensors keeps the last good weights/], { gpu: true });
    });

    it('the DiT trainer (the CLI\'s and the page\'s checkpoints), the VAE and the judge refuse NaN weights at save', async () => {
      const nan = (t: Tensor) => gpu().upload(t.buffer, new Float32Array(t.size).fill(NaN));
      const data = patternLatents([randArray(256, 1), randArray(256, 2)], [4, 8, 8], 8, 0.1);
      const model = new DiT(undefined, { inputSize: 8, inChannels: 4, hiddenSize: 16, depth: 1, numHeads: 2, patchSize: 2, numClasses: 2 });
      const trainer = new DiTTrainer(model, OFFICIAL_OBJECTIVE, data, trainConfig({ batch: 2, steps: 1 }));
      nan(model.namedTensors()[3][1]);
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dit-nan-'));
      try {
        const rejects = async (p: Promise<unknown>, re: RegExp) => {
          const e = await p.then(() => null, (x: Error) => x);
          expect(e, 'rejected').to.be.instanceOf(NonFiniteError);
          expect(e!.message).to.match(re);
        };
        await rejects(trainer.checkpoint(), /the DiT checkpoint of step 0: '.*' holds NaN at element 0; not saved/);
        trainer.dispose(); model.dispose();
        const vae = new AutoencoderKL(SMALL_VAE_32, 0);
        nan(vae.namedTensors()[0][1]);
        await rejects(saveVae(vae, path.join(dir, 'vae.safetensors')), /the VAE weights: '.*' holds NaN at element 0; not saved/);
        vae.dispose();
        const judge = new Classifier({ channels: 3, classes: 2, widths: [8], imageSize: 32 }, 0);
        nan(judge.namedTensors()[0][1]);
        await rejects(saveClassifier(judge, path.join(dir, 'judge.safetensors'), {}), /the judge classifier .* holds NaN/);
        judge.dispose();
        expect(readdirSync(dir), 'nothing written').to.deep.equal([]);
      } finally {
        await fs.rm(dir, { recursive: true, force: true });
      }
    });
  });

  describe('2. an output that is an input, or a run\'s own file, is refused before any work (exit 2)', () => {
    it('`dit export RUN RUN/checkpoints/step-2.safetensors`', () => refused(['export', 'run', ckpt()], 2, [/step-2\.safetensors would overwrite an input/]));
    it('`dit convert x.pt x.pt`', () => refused(['convert', 'x.pt', 'x.pt', '--heads', '4'], 2, [/x\.pt would overwrite an input/]));
    it('`dit sample --weights RUN --out RUN/checkpoints/step-2.safetensors`', () => refused(['sample', '--weights', 'run', '--out', ckpt()], 2, [/step-2\.safetensors would overwrite an input/]));
    it('`dit sample --out RUN/latest` (a run\'s own file, not read by sampling)', () => refused(['sample', '--weights', 'x.pt', '--heads', '4', '--out', 'run/latest'], 2, [/run\/latest is one of the files of the run/]));
    it('`dit vae encode --out` over its own VAE', () => refused(['vae', 'encode', '--weights', 'v.safetensors', '--data', 'folder:folder', '--out', 'v.safetensors'], 2, [/v\.safetensors would overwrite an input/]));
  });

  describe('3. outputs that cannot be written are refused before the work, and no temporary file is ever left', () => {
    it('`dit convert x.pt DIR` (a folder)', async () => {
      await fs.mkdir(path.join(W, 'd'), { recursive: true });
      refused(['convert', 'x.pt', 'd', '--heads', '4'], 2, [/^dit: d is a folder: give a file name/m]);
    });
    it('`dit vae encode --out FILE/x` (under a file)', () => refused(['vae', 'encode', '--weights', 'v.safetensors', '--data', 'folder:folder', '--out', 'lat.safetensors/x.safetensors'], 2, [/cannot write lat\.safetensors\/x\.safetensors: .*lat\.safetensors is a file, not a folder/]));
    it('`dit train --run FILE` (a file where the run folder goes)', () => refused(['train', '--latents', 'lat.safetensors', ...TINY, '--steps', '1', '--run', 'lat.safetensors'], 2, [/lat\.safetensors is a file: give a folder/]));
    it('writeFileAtomic removes its temporary file when the rename fails', async () => {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dit-atomic-'));
      try {
        await fs.mkdir(path.join(dir, 'target'));
        const e = await writeFileAtomic(path.join(dir, 'target'), [new Uint8Array(1000)]).then(() => null, (x: Error) => x);
        expect(e?.message).to.match(/EISDIR|directory/);
        expect(readdirSync(dir)).to.deep.equal(['target']);
      } finally {
        await fs.rm(dir, { recursive: true, force: true });
      }
    });
  });

  describe('4. the page server serves only its roots: no symlink out, no dotfile, GET and HEAD only', () => {
    let server: Server, ref = '';
    const request = (method: string, p: string) => new Promise<{ status: number; body: string; allow?: string }>((resolve, reject) => {
      const u = new URL(server.url);
      const req = http.request({ host: u.hostname, port: u.port, path: p, method }, (r) => {
        let body = '';
        r.setEncoding('utf8').on('data', (c: string) => { body += c; }).on('end', () => resolve({ status: r.statusCode ?? 0, body, allow: r.headers.allow }));
      });
      req.on('error', reject).end();
    });
    before(async () => {
      ref = await fs.mkdtemp(path.join(os.tmpdir(), 'dit-served-'));
      await fs.writeFile(path.join(ref, 'ok.json'), '{"ok":1}');
      await fs.writeFile(path.join(ref, '.secret'), 'token');
      await fs.mkdir(path.join(ref, '.git'));
      await fs.writeFile(path.join(ref, '.git', 'config'), 'remote');
      symlinkSync('/etc', path.join(ref, 'etcdir'));
      symlinkSync('/etc/hostname', path.join(ref, 'hostname'));
      symlinkSync(path.join(ref, 'ok.json'), path.join(ref, 'inside.json'));
      server = await serve(0, ref);
    });
    after(async () => { await server?.close(); await fs.rm(ref, { recursive: true, force: true }); });

    it('refuses what a symbolic link leads to outside the root, and serves a link that stays inside', async () => {
      expect((await request('GET', '/reference/etcdir/hostname')).status).to.equal(404);
      expect((await request('GET', '/reference/hostname')).status).to.equal(404);
      expect(await request('GET', '/reference/inside.json')).to.include({ status: 200, body: '{"ok":1}' });
    });
    it('refuses dotfiles and dot-folders', async () => {
      for (const p of ['/reference/.secret', '/reference/.git/config', '/reference/%2esecret']) expect((await request('GET', p)).status, p).to.equal(404);
    });
    it('answers GET and HEAD (no body), and 405 to anything else', async () => {
      expect(await request('HEAD', '/reference/ok.json')).to.include({ status: 200, body: '' });
      for (const m of ['POST', 'DELETE', 'PUT']) expect(await request(m, '/reference/ok.json'), m).to.include({ status: 405, allow: 'GET, HEAD' });
      expect(readFileSync(path.join(ref, 'ok.json'), 'utf8')).to.equal('{"ok":1}');
    });
  });

  describe('5. heads are not guessed', () => {
    it('`dit convert x.pt out.safetensors` (width 64, not the paper\'s) stops and asks for --heads', () => {
      refused(['convert', 'x.pt', 'o.safetensors'], 2, [/x\.pt: hidden size 64 is not one of the paper's widths .* give it \(--heads N\)/]);
    });
    it('`dit convert x.pt out.safetensors --heads 4` records 4 heads', async () => {
      const r = dit(['convert', 'x.pt', 'h4.safetensors', '--heads', '4']);
      expect(r.status, out(r)).to.equal(0);
      const st = await readSafetensors(path.join(W, 'h4.safetensors'));
      expect(JSON.parse(st.metadata.config).numHeads).to.equal(4);
      await fs.rm(path.join(W, 'h4.safetensors'));
    });
  });

  describe('6. corrupt inputs are reported as corrupt, not as divergence (exit 2)', () => {
    it('a checkpoint with a flipped data byte: "data checksum mismatch — the file is corrupt"', async () => {
      const b = readFileSync(path.join(W, ckpt()));
      b[b.length - 100] ^= 0x40;
      await fs.writeFile(path.join(W, 'flipped.safetensors'), b);
      refused(['sample', '--weights', 'flipped.safetensors', '--out', 's.png'], 2, [/flipped\.safetensors: data checksum mismatch — the file is corrupt/]);
      refused(['export', 'flipped.safetensors', 'f.pt'], 2, [/flipped\.safetensors: data checksum mismatch/]);
    });
    it('a latent cache with a flipped data byte, and one holding NaN', async () => {
      const b = readFileSync(path.join(W, 'lat.safetensors'));
      b[b.length - 5] ^= 0x01;
      await fs.writeFile(path.join(W, 'lat-flipped.safetensors'), b);
      refused(['train', '--latents', 'lat-flipped.safetensors', ...TINY, '--run', 'r6'], 2, [/lat-flipped\.safetensors: data checksum mismatch — the file is corrupt/]);
      const mean = randArray(4 * 256, 3);
      mean[700] = NaN;
      await fs.writeFile(path.join(W, 'lat-nan.safetensors'), serializeSafetensors({
        mean: { shape: [4, 4, 8, 8], data: mean }, logvar: { shape: [4, 4, 8, 8], data: new Float32Array(1024) }, labels: { shape: [4], data: Int32Array.of(0, 1, 0, 1) },
      }, { classes: '["a","b"]' }));
      refused(['train', '--latents', 'lat-nan.safetensors', ...TINY, '--run', 'r6'], 2, [/lat-nan\.safetensors: tensor 'mean' holds NaN at element 700/]);
    });
  });

  describe('7. a latent cache is validated whole at load, naming the file and the first bad index (exit 2)', () => {
    const cache = (name: string, labels: StWriteTensor, count = 3) => fs.writeFile(path.join(W, name), serializeSafetensors({
      mean: { shape: [count, 4, 8, 8], data: new Float32Array(count * 256) }, logvar: { shape: [count, 4, 8, 8], data: new Float32Array(count * 256) }, labels,
    }, { classes: '["a","b"]', scale_factor: '1' }));
    it('a label of −1', async () => {
      await cache('neg.safetensors', { shape: [3], data: Int32Array.of(0, -1, 1) });
      refused(['train', '--latents', 'neg.safetensors', ...TINY, '--run', 'r7'], 2, [/neg\.safetensors: label -1 of latent 1 is not an integer class in \[0, 2\)/]);
    });
    it('float labels', async () => {
      await cache('float.safetensors', { shape: [3], data: Float32Array.of(0, 1, 0.5) });
      refused(['train', '--latents', 'float.safetensors', ...TINY, '--run', 'r7'], 2, [/float\.safetensors: label 0\.5 of latent 2 is not an integer class/]);
    });
    it('a label past the classes it lists', async () => {
      await cache('past.safetensors', { shape: [3], data: Int32Array.of(0, 2, 1) });
      refused(['train', '--latents', 'past.safetensors', ...TINY, '--run', 'r7'], 2, [/past\.safetensors: label 2 of latent 1/]);
    });
    it('an empty cache', async () => {
      await cache('empty.safetensors', { shape: [0], data: new Int32Array(0) }, 0);
      refused(['train', '--latents', 'empty.safetensors', ...TINY, '--run', 'r7'], 2, [/empty\.safetensors: holds no latents/]);
    });
  });

  describe('8. a failed start of `dit train` does not dead-end the run folder', () => {
    it('a start that fails after the checks (weights that do not fit) leaves nothing, and the same --run then starts', () => {
      const bad = dit(['train', '--latents', 'lat.safetensors', ...TINY, '--hidden', '32', '--steps', '1', '--init', ckpt(), '--run', 'r8'], { gpu: true });
      expect(bad.status, out(bad)).to.equal(1);
      expect(bad.stderr).to.match(/shape mismatch for 'pos_embed'/);
      expect(existsSync(path.join(W, 'r8')), 'no run folder after a failed start').to.equal(false);
      const ok = dit(['train', '--latents', 'lat.safetensors', ...TINY, '--steps', '1', '--run', 'r8'], { gpu: true });
      expect(ok.status, out(ok)).to.equal(0);
    });
    it('a folder holding only config.json (a run stopped before its first checkpoint) is started again; one with checkpoints is not', async () => {
      await fs.mkdir(path.join(W, 'r8b'));
      await fs.copyFile(path.join(W, 'run', 'config.json'), path.join(W, 'r8b', 'config.json'));
      const resume = dit(['train', '--resume', 'r8b']);
      expect(resume.status, out(resume)).to.equal(2);
      expect(resume.stderr).to.match(/r8b has no checkpoint yet: nothing to resume \(start it again without --resume/);
      const again = dit(['train', '--latents', 'lat.safetensors', ...TINY, '--steps', '1', '--run', 'r8b'], { gpu: true });
      expect(again.status, out(again)).to.equal(0);
      expect(readFileSync(path.join(W, 'r8b', 'latest'), 'utf8').trim()).to.equal('step-1.safetensors');
      refused(['train', '--latents', 'lat.safetensors', ...TINY, '--steps', '1', '--run', 'r8b'], 1, [/r8b already holds a run with checkpoints; continue it with --resume/], { gpu: true });
    });
  });

  describe('9. what was silently accepted is refused (exit 2), or said', () => {
    it('counts past a sane bound: --steps 1e99, --per-class 1e9, --channels 0,0, --mlp-ratio 0.001', () => {
      refused(['train', '--latents', 'lat.safetensors', '--steps', '1e99', '--run', 'r9'], 2, [/--steps <n>' argument '1e99' is invalid\. '1e99' is not an integer ≥ 1 and ≤ 10000000/]);
      refused(['sample', '--weights', 'run', '--per-class', '1e9', '--out', 's.png'], 2, [/--per-class <n>' argument '1e9' is invalid/]);
      refused(['vae', 'train', '--data', 'folder:folder', '--channels', '0,0', '--out', 'v2.safetensors'], 2, [/--channels <list>' argument '0,0' is invalid/]);
      refused(['vae', 'train', '--data', 'folder:folder', '--channels', '24,48', '--out', 'v2.safetensors'], 2, [/--channels 24,48: every width must be a multiple of 16/]);
      refused(['vae', 'train', '--data', 'folder:folder', '--latent-channels', '0', '--out', 'v2.safetensors'], 2, [/--latent-channels <n>' argument '0' is invalid/]);
      refused(['vae', 'train', '--data', 'folder:folder', '--latent-channels', '8', '--resume', 'lat.safetensors', '--out', 'v2.safetensors'], 2, [/--latent-channels shapes a new small VAE, not --resume lat\.safetensors/]);
      refused(['train', '--latents', 'lat.safetensors', '--mlp-ratio', '0.001', '--run', 'r9'], 2, [/MLP ratio 0\.001 leaves no MLP width at hidden size 128/]);
    });
    it('flags that override a preset\'s model say so', () => {
      const r = dit(['train', '--latents', 'lat.safetensors', '--preset', 'tiny', '--hidden', '32', '--heads', '2', '--steps', '1', '--batch', '4', '--sample-every', '0', '--run', 'r9'], { gpu: true });
      expect(r.status, out(r)).to.equal(0);
      expect(r.stderr).to.match(/the tiny recipe with model\.hiddenSize 32, optim\.steps 1, optim\.batch 4 \(from the flags\)/);
    });
    it('weights stored as I8 or BOOL, and a NaN weight, are refused at load naming the tensor', async () => {
      const st = await readSafetensors(path.join(W, ckpt()));
      const names = st.keys().filter((k) => !/^(ema|opt)\./.test(k));
      const variant = (name: string, k: string, dtype: string, bytes: (n: number) => Uint8Array) => fs.writeFile(path.join(W, name), rawSafetensors(names.map((n) => {
        const count = st.shape(n).reduce((a, b) => a * b, 1);
        return n === k ? { name: n, dtype, shape: st.shape(n), bytes: bytes(count) } : { name: n, dtype: 'F32', shape: st.shape(n), bytes: st.raw(n) };
      }), { format: 'pt', config: st.metadata.config }));
      const k = 'y_embedder.embedding_table.weight';
      await variant('i8.safetensors', k, 'I8', (n) => new Uint8Array(n).fill(1));
      await variant('bool.safetensors', k, 'BOOL', (n) => new Uint8Array(n).fill(1));
      await variant('nan.safetensors', k, 'F32', (n) => { const f = new Float32Array(n); f[5] = NaN; return new Uint8Array(f.buffer); });
      refused(['sample', '--weights', 'i8.safetensors', '--out', 's.png'], 2, [/i8\.safetensors: tensor 'y_embedder\.embedding_table\.weight' is I8, not a float type/]);
      refused(['sample', '--weights', 'bool.safetensors', '--out', 's.png'], 2, [/bool\.safetensors: tensor 'y_embedder\.embedding_table\.weight' is BOOL, not a float type/]);
      refused(['sample', '--weights', 'nan.safetensors', '--out', 's.png'], 2, [/nan\.safetensors: tensor 'y_embedder\.embedding_table\.weight' holds NaN at element 5/]);
    });
  });

  describe('10. messages name their file or flag, and input errors come before the GPU (exit 2)', () => {
    it('a PNG that cannot be decoded', async () => {
      await fs.mkdir(path.join(W, 'badpng', 'a'), { recursive: true });
      await fs.writeFile(path.join(W, 'badpng', 'a', '0.png'), Buffer.concat([readFileSync(path.join(W, 'folder', 'a', '0.png')).subarray(0, 60), Buffer.from('junk')]));
      refused(['data', 'grid', '--data', 'folder:badpng', '--out', 'g.png'], 2, [/badpng\/a\/0\.png: not a PNG that can be read/]);
    });
    it('metadata that is not JSON, a run\'s config.json that is not JSON, an empty `latest`', async () => {
      const st = await readSafetensors(path.join(W, ckpt()));
      await fs.writeFile(path.join(W, 'meta.safetensors'), serializeSafetensors(new Map(st.keys().map((k) => [k, { shape: st.shape(k), data: st.f32(k) }])), { ...st.metadata, classes: '[bad' }));
      refused(['sample', '--weights', 'meta.safetensors', '--out', 's.png'], 2, [/meta\.safetensors: metadata 'classes' is not valid JSON/]);
      await fs.cp(path.join(W, 'run'), path.join(W, 'r10'), { recursive: true });
      await fs.writeFile(path.join(W, 'r10', 'latest'), '');
      refused(['sample', '--weights', 'r10', '--out', 's.png'], 2, [/r10\/latest should name a checkpoint \(step-<N>\.safetensors\), it holds ""/]);
      await fs.writeFile(path.join(W, 'r10', 'config.json'), '{"model": ');
      refused(['sample', '--weights', 'r10', '--out', 's.png'], 2, [/r10\/config\.json: not valid JSON/]);
    });
    it('`dit export` of a .pt', () => refused(['export', 'x.pt', 'e.pt'], 2, [/x\.pt: a torch file; export takes this project's safetensors checkpoints/]));
    it('`dit vae encode` of grey data with a 3-channel VAE', () => {
      refused(['vae', 'encode', '--weights', 'v.safetensors', '--data', 'fashion-mnist:fm', '--out', 'l.safetensors'], 2, [/v\.safetensors: this VAE takes 3-channel images, the fashion-mnist data has 1 channel/]);
    });
    it('checks that came after the GPU started: sample --labels 0,99, --out-dir without a VAE, eval\'s class count, a missing default --latents', () => {
      refused(['sample', '--weights', 'run', '--labels', '0,99', '--out', 's.png'], 2, [/--labels: 99 is not a class of this model \(0–1\)/]);
      refused(['sample', '--weights', 'run', '--out', 's.png', '--out-dir', 'sd'], 2, [/--out-dir needs a VAE to decode with: .*step-2\.safetensors names none/]);
      refused(['eval', '--weights', 'run', '--vae', 'v.safetensors', '--data', 'fashion-mnist:fm'], 2, [/the model of .*step-2\.safetensors has 2 classes, fashion-mnist .*10 classes/]);
      refused(['train', '--run', 'r10b'], 2, [/out\/latents\.safetensors: no such file \(the default latent cache/]);
    });
    it('an unknown flag is said first, with the closest known one', () => {
      refused(['sample', '--weigths', 'x.safetensors'], 2, [/unknown option '--weigths'/, /Did you mean --weights\?/]);
      const r = refused(['sample', '--weights', 'missing.safetensors', '--lables', '1'], 2, [/unknown option '--lables'/, /Did you mean --labels\?/]);
      expect(r.stderr).to.not.match(/missing\.safetensors/);
      refused(['vae', 'train', '--stepz', '2', '--batch', '0'], 2, [/unknown option '--stepz'/, /Did you mean --steps\?/]);
    });
  });

  it('docs/cli.md states the exit codes every command keeps', () => {
    const doc = readFileSync(path.join(ROOT, 'docs', 'cli.md'), 'utf8');
    for (const re of [/\| 0 \|/, /\| 1 \|/, /\| 2 \| .*before any GPU work/, /\| 3 \| .*non-finite/]) expect(doc).to.match(re);
  });
});
