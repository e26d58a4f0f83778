// The `dit` command as users run it: the real binary in child processes. Help and usage errors happen with
// no WebGPU adapter at all (VK_ICD_FILENAMES points nowhere), which proves they touch no GPU; runs resume
// exactly, survive a kill mid-write and stop on a non-finite loss; every example in `dit help` and in the
// README runs (with size flags appended so it finishes in seconds).
import { expect } from 'chai';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, promises as fs, readFileSync, symlinkSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors } from '../engine/safetensors.js';
import { loadTorchCheckpoint, stateDictOf, torchTensorF32 } from '../engine/torchpt.js';
import { progressLine } from '../cli/progress.js';
import { findTorchPython, runTorchPeer, torchPythonCandidates } from '../cli/bench.js';
import { quickTrainer, profileQuickStep, disposeTrainer } from '../bench/quickstep.js';
import { writePatternLatents } from './latents.js';
import { Teacher, TEACHER_32, saveTeacher } from '../eval/teacher.js';
import { AutoencoderKL, SMALL_VAE_32 } from '../vae/model.js';
import { saveVae } from '../vae/train.js';
import { device, randArray, REFERENCE_DIR } from './helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DIT = path.join(ROOT, 'build/cli/dit.js');
const NO_GPU = { VK_ICD_FILENAMES: '/nonexistent/icd.json' };

function dit(args: string[], o: { cwd?: string; env?: Record<string, string> } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [DIT, ...args], { cwd: o.cwd ?? ROOT, env: { ...process.env, ...o.env }, encoding: 'utf8', timeout: 600_000 });
}

const out = (r: SpawnSyncReturns<string>) => `exit ${r.status ?? r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

/** A latent cache of `count` 4×8×8 latents in the 10 built-in classes (one fixed pattern each, std 0.1), with 8-wide teacher features (the default recipe aligns). */
async function writeLatents(file: string, count = 200): Promise<void> {
  const classes = ['disc', 'square', 'triangle', 'stripes', 'ring', 'cross', 'checkerboard', 'blob', 'star', 'pair'];
  await writePatternLatents(file, classes.map((_, k) => randArray(256, 40 + k)), [4, 8, 8], count, 0.1, classes, { dataset: 'synthetic' }, 8);
}

const TINY = ['--hidden', '16', '--depth', '1', '--heads', '2', '--patch', '2', '--batch', '4', '--sample-every', '0'];

function metrics(run: string): { step: number; loss: number; mse: number }[] {
  return readFileSync(path.join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

describe('the dit command', function () {
  this.timeout(900_000);
  let dir = '';
  before(async () => {
    await device();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dit-cli-'));
    await writeLatents(path.join(dir, 'lat.safetensors'));
  });
  after(async () => { if (dir) await fs.rm(dir, { recursive: true, force: true }); });

  describe('help and usage errors (no GPU adapter present)', () => {
    const commands = [[], ['demo'], ['train'], ['sample'], ['eval'], ['verify'], ['convert'], ['flops'], ['export'], ['vae'], ['vae', 'train'], ['vae', 'encode'], ['vae', 'decode'], ['vae', 'psnr'], ['data'], ['data', 'grid'], ['bench']];
    it('`dit <command> --help` prints options and an example for every command, exit 0', () => {
      for (const c of commands) {
        const r = dit([...c, '--help'], { env: NO_GPU });
        expect(r.status, `${c.join(' ')} --help\n${out(r)}`).to.equal(0);
        expect(r.stdout).to.match(/Usage: dit/);
        if (c.length && !['vae', 'data'].includes(c.join(' '))) expect(r.stdout, `${c.join(' ')} --help shows an example`).to.match(/\$ dit /);
      }
      const v = dit(['--version'], { env: NO_GPU });
      expect(v.status).to.equal(0);
      expect(v.stdout.trim()).to.equal(JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);
    });

    const usage: [string[], RegExp][] = [
      [['train', '--weigths', 'x'], /unknown option '--weigths'/],
      [['sample', '--weights'], /option '--weights <ckpt-or-run>' argument missing/],
      [['train', '--steps', 'ten'], /'ten' is not a number/],
      [['train', '--steps', '0'], /--steps <n>' argument '0' is invalid\. '0' is not an integer ≥ 1/],
      [['train', '--batch', '-1'], /--batch <n>' argument '-1' is invalid/],
      [['train', '--lr', '0'], /--lr <x>' argument '0' is invalid\. '0' is not a number > 0/],
      [['sample', '--weights', 'README.md', '--sampler', 'foo'], /argument 'foo' is invalid\. Allowed choices are ddpm, ddim/],
      [['train', '--model', 'DiT-M/2'], /Allowed choices are DiT-XL\/2/],
      [['eval', '--data', 'mnist'], /'mnist' is not a dataset: use synthetic \(built in\), fashion-mnist\[:DIR\], cifar10:DIR or folder:DIR/],
      [['train', '--latents', 'missing.safetensors'], /missing\.safetensors: no such file or folder/],
      [['eval'], /give --samples DIR, --weights CKPT_OR_RUN, --curve RUN… or --reconstructions/],
      [['eval', '--reconstructions'], /--reconstructions needs --vae FILE/],
      [['demo', '--preset', 'dit-s'], /argument 'dit-s' is invalid\. Allowed choices are quick, long/],
      [['nonsense'], /unknown command 'nonsense'/],
    ];
    for (const [args, msg] of usage) {
      it(`\`dit ${args.join(' ')}\` is a usage error (exit 2) that names the problem`, () => {
        const r = dit(args, { env: NO_GPU });
        expect(r.status, out(r)).to.equal(2);
        expect(r.stderr, out(r)).to.match(msg);
      });
    }

    it('a config that cannot be built is a usage error before any GPU work', () => {
      const r = dit(['train', '--latents', path.join(dir, 'lat.safetensors'), '--hidden', '30', '--heads', '4'], { env: NO_GPU });
      expect(r.status, out(r)).to.equal(2);
      expect(r.stderr).to.match(/hidden size 30 is not divisible by 4 heads/);
    });
  });

  describe('training runs', () => {
    it('a resumed run estimates the time left from the steps it did itself, not from step 0', () => {
      // 10 steps in 10 s after resuming at step 5600 of 11200: 1 step/s, so 5590 s are left (not 10 s).
      expect(progressLine('training', 5610, 11200, 10, 5600)).to.equal('training 5610/11200 (50%) 10.0s elapsed, ~5590s left');
      expect(progressLine('training', 10, 100, 5)).to.equal('training 10/100 (10%) 5.0s elapsed, ~45s left');
      expect(progressLine('training', 5600, 11200, 0, 5600, 'loss 1')).to.equal('training 5600/11200 (50%) 0.0s elapsed, ~0s left  loss 1');
    });

    it('`dit vae train` records in the weights the command that trained them, chained after the one a --resume continues, and their steps', async () => {
      const v = path.join(dir, 'vae-phases.safetensors');
      const phase = (flags: string[]) => dit(['vae', 'train', ...flags, '--steps', '2', '--batch', '2', '--eval-every', '0', '--eval-images', '4', '--out', v]);
      let r = phase(['--latent-channels', '8', '--equivariance', '0.5']);
      expect(r.status, out(r)).to.equal(0);
      r = phase(['--resume', v, '--loss', 'mse', '--cosine']);
      expect(r.status, out(r)).to.equal(0);
      const meta = (await readSafetensors(v)).metadata;
      expect(meta.command).to.equal(`dit vae train --latent-channels 8 --steps 2 --batch 2 --lr 0.001 --loss l1 --equivariance 0.5 --out ${v} && dit vae train --resume ${v} --steps 2 --batch 2 --lr 0.001 --loss mse --cosine --out ${v}`);
      expect(meta).to.include({ data: 'synthetic', steps: '4', psnr_images: '4' });
      expect(Number(meta.psnr_db)).to.be.greaterThan(0);
    });

    // `dit eval --weights` resolves its sampler, steps and guidance with the same function (samplingSettings).
    it('`dit sample` samples as the recipe the weights were trained with records, flags overriding; weights without one as the official sample.py', async () => {
      const lat = path.join(dir, 'lat.safetensors'), eps = path.join(dir, 'runP'), flow = path.join(dir, 'runQ');
      expect(dit(['train', '--latents', lat, '--preset', 'tiny', ...TINY, '--steps', '1', '--run', eps]).status).to.equal(0);
      expect(dit(['train', '--latents', lat, '--preset', 'tiny', ...TINY, '--objective', 'flow', '--cfg-interval', '0,0.6', '--steps', '1', '--run', flow]).status).to.equal(0);
      const meta = (await readSafetensors(path.join(flow, 'checkpoints', 'step-1.safetensors'))).metadata;
      expect(meta.preset).to.equal('tiny');
      expect(JSON.parse(meta.recipe).objective.kind).to.equal('flow');
      const settings = (weights: string, flags: string[]) => {
        const r = dit(['sample', '--weights', weights, '--labels', '0', '--out', path.join(dir, 'p.png'), ...flags]);
        expect(r.status, out(r)).to.equal(0);
        return /samples; (.*?) \(/.exec(r.stderr)![1];
      };
      // tiny samples with DDIM at guidance 3 on every channel; a flow run with Heun; the reference dump, with no
      // recipe, as sample.py: DDPM at guidance 4 on the first three channels.
      expect(settings(eps, ['--steps', '2'])).to.equal('ε-prediction, ddim 2 steps, guidance 3 on all channels');
      expect(settings(eps, ['--steps', '2', '--sampler', 'ddpm', '--cfg', '1.5', '--guide', 'official'])).to.equal('ε-prediction, ddpm 2 steps, guidance 1.5 on the first 3 channels');
      expect(settings(flow, ['--steps', '2'])).to.equal('flow matching, heun 2 steps, guidance 3 on all channels at noise levels 0–0.6');
      expect(settings(flow, ['--steps', '2', '--cfg-interval', '0.2,0.8'])).to.equal('flow matching, heun 2 steps, guidance 3 on all channels at noise levels 0.2–0.8');
      const backwards = dit(['sample', '--weights', flow, '--labels', '0', '--cfg-interval', '0.8,0.2', '--out', path.join(dir, 'p.png')], { env: NO_GPU });
      expect(backwards.status, out(backwards)).to.equal(2);
      expect(backwards.stderr).to.match(/--cfg-interval.*'0.8,0.2' is not lo,hi with 0 ≤ lo < hi ≤ 1/);
      expect(settings(path.join(REFERENCE_DIR, 'dit_tiny_p2.safetensors'), ['--steps', '2'])).to.equal('ε-prediction, ddpm 2 steps, guidance 4 on the first 3 channels');
      const wrong = dit(['sample', '--weights', flow, '--labels', '0', '--sampler', 'ddim', '--out', path.join(dir, 'p.png')], { env: NO_GPU });
      expect(wrong.status, out(wrong)).to.equal(2);
      expect(wrong.stderr).to.match(/flow matching objective samples with euler, heun or ddpm, not 'ddim'/);
    });

    it('`dit eval --curve` scores every snapshot a run kept against its training compute, and writes the curve as JSON and a plot', async () => {
      const lat = path.join(dir, 'lat.safetensors'), run = path.join(dir, 'runCurve');
      let r = dit(['train', '--latents', lat, ...TINY, '--steps', '4', '--snapshots', '2', '--vae', path.join(ROOT, 'weights/vae-synthetic.safetensors'), '--run', run]);
      expect(r.status, out(r)).to.equal(0);
      r = dit(['eval', '--curve', run, '--per-class', '2', '--real-images', '200', '--steps', '2']);
      expect(r.status, out(r)).to.equal(0);
      const curve = JSON.parse(readFileSync(path.join(run, 'curve.json'), 'utf8'));
      expect(curve.points.map((p: { step: number }) => p.step)).to.deep.equal([2, 4]);
      // 4 images a step of the recipe's model: compute grows with the images seen, as the metadata records it.
      expect(curve.points.map((p: { images: number }) => p.images)).to.deep.equal([8, 16]);
      expect(curve.points[1].multiplyAdds).to.be.closeTo(2 * curve.points[0].multiplyAdds, 1);
      for (const p of curve.points) expect(p.accuracy).to.be.within(0, 1);
      expect(curve.floor).to.be.greaterThan(0);
      expect(curve.ceiling.frechet).to.be.greaterThan(0);
      expect(existsSync(path.join(run, 'curve.png'))).to.equal(true);
      expect(r.stdout).to.match(/\| 4 \| 16 \|/);
    });

    it('resumes exactly: steps 5–8 after a resume equal those of an uninterrupted run, bit for bit', async () => {
      const lat = path.join(dir, 'lat.safetensors'), a = path.join(dir, 'runA'), b = path.join(dir, 'runB');
      const base = ['train', '--latents', lat, ...TINY, '--log-every', '1', '--checkpoint-every', '4', '--lr', '1e-3', '--warmup', '2'];
      let r = dit([...base, '--steps', '8', '--run', a]);
      expect(r.status, out(r)).to.equal(0);
      r = dit([...base, '--steps', '4', '--run', b]);
      expect(r.status, out(r)).to.equal(0);
      r = dit(['train', '--resume', b, '--steps', '8']);
      expect(r.status, out(r)).to.equal(0);
      expect(r.stderr).to.match(/resumed .* at step 4/);
      const ma = metrics(a), mb = metrics(b);
      expect(mb.map((m) => m.step)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(mb.slice(4).map((m) => [m.loss, m.mse]), 'losses after the resume').to.deep.equal(ma.slice(4).map((m) => [m.loss, m.mse]));
      expect(new Set(ma.map((m) => m.loss)).size, 'the losses differ step to step (the check can fail)').to.be.greaterThan(4);
      expect(readFileSync(path.join(b, 'latest'), 'utf8').trim()).to.equal('step-8.safetensors');
      const cfg = JSON.parse(readFileSync(path.join(b, 'config.json'), 'utf8'));
      expect(cfg.model).to.include({ hiddenSize: 16, depth: 1, numHeads: 2, patchSize: 2, inputSize: 8, inChannels: 4, numClasses: 10 });
      expect(cfg.recipe.optim).to.include({ batch: 4, lr: 1e-3, warmup: 2 });
      const st = await readSafetensors(path.join(b, 'checkpoints', 'step-8.safetensors'));
      expect(st.metadata).to.include({ format: 'dit-webgpu-train', step: '8' });
      for (const k of ['pos_embed', 'ema.pos_embed', 'opt.m.final_layer.linear.weight', 'opt.v.blocks.0.attn.qkv.weight']) expect(st.has(k), k).to.equal(true);
      expect(Object.keys(JSON.parse(st.metadata.rng))).to.have.members(['noise', 'timesteps', 'order', 'labelDrop']);
      // A resumed run refuses to change what defines it.
      r = dit(['train', '--resume', b, '--steps', '9', '--lr', '1'], { env: NO_GPU });
      expect(r.status, out(r)).to.equal(2);
      expect(r.stderr).to.match(/these cannot change: --lr/);
    });

    it('exports a run as the official training layout {model, ema, opt, args} and starts a new run from it', async () => {
      const a = path.join(dir, 'runA'), pt = path.join(dir, 'runA.pt');
      const r = dit(['export', a, pt]);
      expect(r.status, out(r)).to.equal(0);
      const ck = await loadTorchCheckpoint(readFileSync(pt), pt);
      const root = ck.root as Map<string, unknown>;
      expect([...root.keys()]).to.have.members(['model', 'ema', 'opt', 'args']);
      const st = await readSafetensors(path.join(a, 'checkpoints', 'step-8.safetensors'));
      const model = stateDictOf(ck, 'model'), ema = stateDictOf(ck, 'ema');
      expect([...model.keys()][0]).to.equal('pos_embed');
      for (const [k, t] of model) expect(Array.from(torchTensorF32(t)), k).to.deep.equal(Array.from(st.f32(k)));
      for (const [k, t] of ema) expect(Array.from(torchTensorF32(t)), `ema ${k}`).to.deep.equal(Array.from(st.f32(`ema.${k}`)));
      const opt = root.get('opt') as Map<string, unknown>;
      const state = opt.get('state') as Map<number, Map<string, unknown>>;
      // Parameter 0 is pos_embed (not trained: no state); the others carry AdamW's step and moments.
      expect(state.has(0)).to.equal(false);
      const names = [...model.keys()];
      const first = state.get(1)!;
      expect(torchTensorF32(first.get('step') as never)[0]).to.equal(8);
      expect(Array.from(torchTensorF32(first.get('exp_avg') as never))).to.deep.equal(Array.from(st.f32(`opt.m.${names[1]}`)));
      expect((root.get('args') as Map<string, unknown>).get('num_classes')).to.equal(10);
      const init = dit(['train', '--latents', path.join(dir, 'lat.safetensors'), ...TINY, '--steps', '2', '--init', pt, '--run', path.join(dir, 'runI')]);
      expect(init.status, out(init)).to.equal(0);
      expect(init.stderr).to.match(/initialised from .*runA\.pt/);
      // A config the weights do not fit is refused with the tensor named.
      const bad = dit(['train', '--latents', path.join(dir, 'lat.safetensors'), ...TINY, '--hidden', '32', '--steps', '1', '--init', pt, '--run', path.join(dir, 'runJ')]);
      expect(bad.status, out(bad)).to.equal(1);
      expect(bad.stderr).to.match(/shape mismatch for 'pos_embed'/);
    });

    it('a process killed while writing a checkpoint leaves the previous one and `latest` intact, and resumes from it', async () => {
      const lat = path.join(dir, 'lat.safetensors'), c = path.join(dir, 'runC'), a = path.join(dir, 'runA');
      const r = dit(['train', '--latents', lat, ...TINY, '--log-every', '1', '--checkpoint-every', '4', '--lr', '1e-3', '--warmup', '2', '--steps', '8', '--run', c], { env: { DIT_TEST_KILL_WHILE_WRITING: 'step-8.safetensors' } });
      expect(r.signal, out(r)).to.equal('SIGKILL');
      expect(readFileSync(path.join(c, 'latest'), 'utf8').trim()).to.equal('step-4.safetensors');
      expect(existsSync(path.join(c, 'checkpoints', 'step-8.safetensors'))).to.equal(false);
      const st = await readSafetensors(path.join(c, 'checkpoints', 'step-4.safetensors'));
      expect(st.metadata.step).to.equal('4');
      const again = dit(['train', '--resume', c, '--steps', '8']);
      expect(again.status, out(again)).to.equal(0);
      expect(metrics(c).slice(4).map((m) => m.loss)).to.deep.equal(metrics(a).slice(4).map((m) => m.loss));
    });

    it('a non-finite loss stops the run naming the step, exit 3, and never checkpoints it', async () => {
      const lat = path.join(dir, 'lat.safetensors'), d = path.join(dir, 'runD');
      const r = dit(['train', '--latents', lat, ...TINY, '--log-every', '5', '--checkpoint-every', '1', '--lr', '1e30', '--steps', '40', '--run', d]);
      expect(r.status, out(r)).to.equal(3);
      const m = /non-finite at step (\d+)/.exec(r.stderr);
      expect(m, out(r)).to.not.equal(null);
      const bad = Number(m![1]);
      const latest = readFileSync(path.join(d, 'latest'), 'utf8').trim();
      expect(Number(/step-(\d+)/.exec(latest)![1])).to.be.below(bad);
      const st = await readSafetensors(path.join(d, 'checkpoints', latest));
      for (const k of st.keys()) expect(st.f32(k).every(Number.isFinite), `${latest}: ${k} is finite`).to.equal(true);
      expect(existsSync(path.join(d, 'checkpoints', `step-${bad}.safetensors`))).to.equal(false);
    });
  });

  describe('the examples in `dit help` and the README', () => {
    /** Size flags appended to each example (later flags win), so every one finishes in seconds. */
    const SHRINK: [RegExp, string[]][] = [
      [/^train .*--resume/, ['--steps', '6']],
      [/^train /, ['--steps', '3', '--batch', '4', '--checkpoint-every', '2', '--log-every', '1', '--sample-every', '0']],
      [/^sample /, ['--steps', '2']],
      [/^eval /, ['--per-class', '2', '--steps', '2', '--real-images', '200']],
      [/^vae train /, ['--steps', '2', '--eval-every', '0', '--eval-images', '8']],
      [/^vae encode /, ['--count', '16']],
      [/^teacher train /, ['--count', '64', '--epochs', '1']],
      [/^vae psnr /, ['--count', '8']],
      [/^bench /, ['--configs', 'S/8', '--batch', '1', '--reps', '1']],
    ];
    const shrink = (cmd: string) => SHRINK.find(([re]) => re.test(cmd))?.[1] ?? [];

    function examplesFrom(): string[] {
      const r = dit(['--help'], { env: NO_GPU });
      const cmds = [...r.stdout.matchAll(/^\s+\$ dit (.+)$/gm)].map((m) => m[1]);
      const all = new Set<string>();
      for (const line of cmds) {
        const words = line.split(' ');
        const sub = ['vae', 'data', 'teacher'].includes(words[0]) ? words.slice(0, 2) : words.slice(0, 1);
        const h = dit([...sub, '--help'], { env: NO_GPU });
        for (const m of h.stdout.matchAll(/^\s+\$ dit (.+)$/gm)) all.add(m[1]);
      }
      const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
      for (const block of readme.matchAll(/```sh\n([\s\S]*?)```/g)) {
        for (const l of block[1].split('\n')) {
          const m = /^(?:dit|node build\/cli\/dit\.js|npx dit) (.+?)(?:\s+#.*)?$/.exec(l.trim());
          if (m) all.add(m[1]);
        }
      }
      return [...all];
    }

    it('every example runs (in a fresh folder with the files the examples name)', async function () {
      this.timeout(1_800_000); // about 25 `dit` processes, each starting a device: minutes on a software adapter
      // What this checks is the command line (every documented example runs), not the adapter: CI's second pass
      // on SwiftShader (`npm run test:swiftshader`) would repeat it for ~15 minutes, so it runs on the first only.
      if (/swiftshader/i.test(process.env.VK_ICD_FILENAMES ?? '')) this.skip();
      // A folder laid out like a checkout: <parent>/main (the working folder) beside <parent>/shared.
      const parent = await fs.mkdtemp(path.join(os.tmpdir(), 'dit-examples-'));
      const cwd = path.join(parent, 'main');
      try {
        // The files the examples read: a latent cache, a VAE, the shared reference dumps and the data cache.
        await fs.mkdir(path.join(cwd, 'out'), { recursive: true });
        await writeLatents(path.join(cwd, 'out', 'latents.safetensors'));
        await saveVae(new AutoencoderKL(SMALL_VAE_32, 0), path.join(cwd, 'out', 'vae-small.safetensors'));
        const teacher = new Teacher({ ...TEACHER_32, channels: 3, classes: 10 }, 0);
        await saveTeacher(teacher, path.join(cwd, 'out', 'teacher.safetensors'), { data: 'synthetic' });
        teacher.dispose();
        symlinkSync(path.resolve(ROOT, '..', 'shared'), path.join(parent, 'shared'), 'dir');
        if (existsSync(path.join(ROOT, '.cache'))) symlinkSync(path.join(ROOT, '.cache'), path.join(cwd, '.cache'), 'dir');
        symlinkSync(path.join(ROOT, 'weights'), path.join(cwd, 'weights'), 'dir'); // the shipped VAE, judge and teacher
        // Runs the examples read from, as a user would have made them.
        expect(dit(['train', '--latents', 'out/latents.safetensors', '--vae', 'out/vae-small.safetensors', '--run', 'out/runs/quick', ...TINY, '--steps', '2'], { cwd }).status).to.equal(0);
        const examples = examplesFrom();
        expect(examples.length).to.be.greaterThan(10);
        const ran: string[] = [];
        for (const ex of examples) {
          // The main job itself is CI's first command (`npm run demo`), not repeated here.
          if (/^demo\b/.test(ex)) continue;
          const args = ex.match(/(?:[^\s"']+|"[^"]*"|'[^']*')+/g)!.map((a) => a.replace(/^['"]|['"]$/g, ''));
          const r = dit([...args, ...shrink(ex)], { cwd });
          expect(r.status, `dit ${ex}\n${out(r)}`).to.equal(0);
          ran.push(ex);
        }
        expect(ran.some((e) => e.startsWith('train')) && ran.some((e) => e.startsWith('sample')) && ran.some((e) => e.startsWith('eval'))).to.equal(true);
      } finally {
        await fs.rm(parent, { recursive: true, force: true });
      }
    });
  });
});

describe('the PyTorch CPU peer of `dit bench --peers`', () => {
  it('looks in $DIT_PYTHON first, and with no Python that imports torch is skipped, saying why, never a crash', async () => {
    expect(torchPythonCandidates({ DIT_PYTHON: '/nonexistent/python' })).to.deep.equal(['/nonexistent/python', 'python3', '/usr/bin/python3']);
    expect(torchPythonCandidates({})).to.deep.equal(['python3', '/usr/bin/python3']);
    const said: string[] = [];
    expect(await findTorchPython(['/nonexistent/python', '/bin/false'], (m) => said.push(m), 10)).to.equal(null);
    expect(said.join('\n')).to.match(/\/nonexistent\/python: not found/).and.match(/\/bin\/false: exit 1/);
    const p = await runTorchPeer(1, 256, 1, 10, ['/nonexistent/python']);
    expect(p).to.include({ python: null, torch: null, train_step_ms: null, forward_ms: null });
    expect(p.status).to.match(/^skipped: no Python with torch among \/nonexistent\/python/);
  });
});

describe('the profiled quick step of `dit bench --profile`', () => {
  it('accounts for every dispatch of one training step, grouped into kernel families', async function () {
    const g = await device();
    if (!g.hasTimestamps) this.skip(); // the adapter has no timestamp queries (the command says so)
    const t = quickTrainer(4);
    try {
      const p = await profileQuickStep(t, 1);
      const total = (list: { ms: number; count: number }[], k: 'ms' | 'count') => list.reduce((s, e) => s + e[k], 0);
      expect(total(p.kernels, 'count')).to.equal(p.dispatches);
      expect(total(p.families, 'count')).to.equal(p.dispatches);
      expect(total(p.families, 'ms')).to.be.closeTo(p.gpuMs, 1e-6 * p.gpuMs);
      expect(p.families.map((f) => f.name)).to.include.members(['matmul', 'adamw', 'ema']);
      for (const k of p.kernels) expect(k.ms, k.name).to.be.at.least(0);
      for (let i = 1; i < p.families.length; i++) expect(p.families[i].ms).to.be.at.most(p.families[i - 1].ms);
    } finally {
      disposeTrainer(t);
    }
  });
});
