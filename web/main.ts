// The browser page: the engine on navigator.gpu (the same code as in Node). Parity with the official
// PyTorch dump, class-conditional sampling with a live progress bar and x̂0 previews, and kernel timings.
// `window.dit` exposes the same actions for automated tests.
import { getDevice, describeAdapter } from '../engine/device.js';
import { Tensor, scope, noGrad, keep } from '../engine/tensor.js';
import { Safetensors, TensorSource } from '../engine/safetensors.js';
import { matmul } from '../kernels/matmul.js';
import { randn } from '../kernels/random.js';
import { timeGpu } from '../kernels/autotune.js';
import { flashAttention } from '../kernels/attention.js';
import { slice } from '../kernels/shape.js';
import { scale as scaleOp } from '../kernels/elementwise.js';
import { weightsFromSource, ditFromWeights } from '../dit/checkpoint.js';
import { compare } from '../verify/report.js';
import { DiT } from '../dit/model.js';
import { GaussianDiffusion } from '../diffusion/gaussian.js';
import { generate } from '../diffusion/sample.js';
import { AutoencoderKL } from '../vae/model.js';
import { vaeWeights, vaeConfigFromJson, inferVaeConfig } from '../vae/checkpoint.js';

const $ = (id: string) => document.getElementById(id)!;

async function fetchSafetensors(url: string): Promise<Safetensors | null> {
  const r = await fetch(url);
  if (!r.ok) return null;
  return new Safetensors(new Uint8Array(await r.arrayBuffer()), url);
}

const sourceOf = (st: Safetensors) => new TensorSource([st], new Map(st.keys().map((k) => [k, st])), st.source);

export interface ParityResult { forward: number; cfg: number; pass: boolean }

/** Recomputes out.forward and cfg.out_scale4.0 of the reference dump; rel-to-max errors. */
async function runParity(): Promise<ParityResult> {
  const st = await fetchSafetensors('../reference/dit_tiny_p2.safetensors');
  if (!st) throw new Error('reference/dit_tiny_p2.safetensors is not served');
  const model = ditFromWeights({ tensors: weightsFromSource(sourceOf(st)), metadata: st.metadata, source: st.source });
  model.eval();
  const T = (k: string) => Tensor.from(st.f32(k), st.shape(k));
  const ints = (k: string) => Array.from(st.f32(k), Math.round);
  const out = scope(() => noGrad(() => model.forward(T('inputs.x'), ints('inputs.t'), ints('inputs.y'))));
  const forward = compare((await out.data()) as Float32Array, st.f32('out.forward')).error;
  const cfgOut = scope(() => noGrad(() => model.forwardWithCfg(T('cfg.x'), ints('cfg.t'), ints('cfg.y'), 4)));
  const cfg = compare((await cfgOut.data()) as Float32Array, st.f32('cfg.out_scale4.0')).error;
  model.dispose();
  return { forward, cfg, pass: forward < 1e-4 && cfg < 1e-4 };
}

/** A trained DiT + VAE from ../out/ when present (the demo writes them), else a random tiny DiT. */
async function loadModels(): Promise<{ dit: DiT; vae: AutoencoderKL | null; scale: number; classes: string[]; trained: boolean }> {
  const [ditSt, vaeSt] = await Promise.all([fetchSafetensors('../out/dit-small.safetensors').catch(() => null), fetchSafetensors('../out/vae-small.safetensors').catch(() => null)]);
  if (ditSt && vaeSt) {
    const dit = ditFromWeights({ tensors: weightsFromSource(sourceOf(ditSt)), metadata: ditSt.metadata, source: ditSt.source });
    const w = vaeWeights(sourceOf(vaeSt));
    const meta = vaeSt.metadata.config ? vaeConfigFromJson(JSON.parse(vaeSt.metadata.config)) : {};
    const vae = new AutoencoderKL({ ...inferVaeConfig((k) => w.get(k)?.shape, [...w.keys()]), ...meta });
    vae.loadStateDict(w);
    return { dit, vae, scale: Number(ditSt.metadata.scale_factor ?? 1), classes: JSON.parse(ditSt.metadata.classes ?? '[]'), trained: true };
  }
  const dit = new DiT(undefined, { inputSize: 8, hiddenSize: 64, depth: 2, numHeads: 4, numClasses: 10 }, 3);
  return { dit, vae: null, scale: 1, classes: [], trained: false };
}

function drawImage(canvas: HTMLCanvasElement, chw: Float32Array, C: number, H: number, W: number, minmax: boolean): void {
  canvas.width = W; canvas.height = H;
  const ctx = canvas.getContext('2d')!;
  const img = ctx.createImageData(W, H);
  let lo = -1, hi = 1;
  if (minmax) { lo = Math.min(...chw.subarray(0, Math.min(C, 3) * H * W)); hi = Math.max(...chw.subarray(0, Math.min(C, 3) * H * W)) || lo + 1; }
  for (let p = 0; p < H * W; p++) {
    for (let c = 0; c < 3; c++) img.data[p * 4 + c] = Math.max(0, Math.min(255, Math.round((255 * (chw[Math.min(c, C - 1) * H * W + p] - lo)) / (hi - lo))));
    img.data[p * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

let models: Awaited<ReturnType<typeof loadModels>> | null = null;

export interface SampleResult { images: number; steps: number; ms: number; trained: boolean; finite: boolean }

async function runSample(opts: { steps?: number; cfg?: number; seed?: number; labels?: number[] } = {}): Promise<SampleResult> {
  models ??= await loadModels();
  const { dit, vae, scale, classes, trained } = models;
  dit.eval();
  const c = dit.config;
  const labels = opts.labels ?? Array.from({ length: Math.min(c.numClasses, 10) }, (_, i) => i);
  const steps = opts.steps ?? 25;
  const diffusion = new GaussianDiffusion({ respacing: `ddim${steps}`, learnSigma: c.learnSigma });
  const box = $('samples');
  box.innerHTML = '';
  const canvases = labels.map((l) => { const cv = document.createElement('canvas'); cv.title = classes[l] ?? `class ${l}`; box.appendChild(cv); return cv; });
  const bar = $('progress') as HTMLProgressElement;
  bar.max = steps;
  const t0 = performance.now();
  const decode = async (z: Tensor): Promise<{ data: Float32Array; C: number; H: number; W: number }> => {
    if (!vae) return { data: (await z.data()) as Float32Array, C: c.inChannels, H: c.inputSize, W: c.inputSize };
    const x = scope(() => noGrad(() => vae.decode(scale === 1 ? z : scaleOp(z, 1 / scale))));
    const [, C, H, W] = x.shape;
    const data = (await x.data()) as Float32Array;
    x.dispose();
    return { data, C, H, W };
  };
  const show = async (z: Tensor) => {
    const { data, C, H, W } = await decode(z);
    const per = C * H * W;
    canvases.forEach((cv, i) => drawImage(cv, data.subarray(i * per, (i + 1) * per), C, H, W, !vae));
  };
  const x = await generate(dit, diffusion, labels, [c.inChannels, c.inputSize, c.inputSize], {
    sampler: 'ddim', cfgScale: opts.cfg ?? 4, seed: opts.seed ?? 0, nullLabel: c.numClasses,
    onStep: async ({ step, total, predXstart }) => {
      bar.value = step + 1;
      $('sample-status').textContent = `step ${step + 1}/${total}`;
      // A preview of the predicted clean image every few steps (first half: the conditional samples).
      if (step % 5 === 4 && step + 1 < total) {
        const first = scope(() => slice(predXstart, 0, 0, labels.length));
        await show(first);
        first.dispose();
      }
    },
  });
  await show(x);
  const data = (await x.data()) as Float32Array;
  const ms = performance.now() - t0;
  $('sample-status').textContent = `${labels.length} samples, ${steps} DDIM steps in ${(ms / 1000).toFixed(1)} s`;
  $('model-note').textContent = trained ? `DiT trained by the demo on the built-in dataset (${classes.join(', ')}), decoded by its VAE.` : 'No trained model served from ../out/ (run `npm run demo` first): an untrained DiT, latents shown directly.';
  x.dispose();
  return { images: labels.length, steps, ms, trained, finite: data.every(Number.isFinite) };
}

export interface BenchRow { name: string; ms: number; gflops: number }

async function runBench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const table = $('bench');
  table.innerHTML = '<tr><th>kernel</th><th>ms</th><th>GFLOP/s</th></tr>';
  const add = (r: BenchRow) => { rows.push(r); table.insertAdjacentHTML('beforeend', `<tr><td>${r.name}</td><td>${r.ms.toFixed(1)}</td><td>${r.gflops.toFixed(2)}</td></tr>`); };
  for (const n of [256, 512]) {
    const a = keep(randn([n, n], 1)), b = keep(randn([n, n], 2));
    const ms = await timeGpu(() => { matmul(a, b); }, 3);
    add({ name: `matmul ${n}³`, ms, gflops: (2 * n ** 3) / ms / 1e6 });
    a.dispose(); b.dispose();
  }
  const q = keep(randn([2, 64, 256], 3)), k = keep(randn([2, 64, 256], 4)), v = keep(randn([2, 64, 256], 5));
  const ms = await timeGpu(() => { flashAttention(q, k, v, 4); }, 3);
  add({ name: 'flash attention B2 H4 T64 d64', ms, gflops: (4 * 2 * 4 * 64 * 64 * 64) / ms / 1e6 });
  for (const t of [q, k, v]) t.dispose();
  return rows;
}

async function main(): Promise<void> {
  const g = await getDevice();
  const a = g.adapter;
  $('adapter-info').textContent = `${describeAdapter(a)} — features: ${a.features.filter((f) => ['shader-f16', 'subgroups', 'timestamp-query'].includes(f)).join(', ') || 'none of f16/subgroups/timestamps'}; subgroup size ${a.subgroupMinSize || '?'}`;
  const wrap = <T>(btn: string, status: string, f: () => Promise<T>, fmt: (r: T) => string) => async () => {
    ($(btn) as HTMLButtonElement).disabled = true;
    try { const r = await f(); $(status).innerHTML = fmt(r); return r; } catch (e) { $(status).innerHTML = `<span class="bad">${(e as Error).message}</span>`; throw e; } finally { ($(btn) as HTMLButtonElement).disabled = false; }
  };
  const parity = wrap('run-parity', 'parity', runParity, (r) => `<span class="${r.pass ? 'ok' : 'bad'}">forward ${r.forward.toExponential(2)}, guided ${r.cfg.toExponential(2)} (rel-to-max; tolerance 1e-4) — ${r.pass ? 'PASS' : 'FAIL'}</span>`);
  const sample = wrap('run-sample', 'sample-status', () => runSample({ steps: +($('steps') as HTMLInputElement).value, cfg: +($('cfg') as HTMLInputElement).value, seed: +($('seed') as HTMLInputElement).value }), (r) => `${r.images} samples, ${r.steps} steps in ${(r.ms / 1000).toFixed(1)} s`);
  const bench = wrap('run-bench', 'bench-status', runBench, () => 'done');
  $('run-parity').addEventListener('click', () => void parity());
  $('run-sample').addEventListener('click', () => void sample());
  $('run-bench').addEventListener('click', () => void bench());
  (window as unknown as { dit: object }).dit = { adapter: a, runParity, runSample, runBench };
  document.body.dataset.ready = '1';
}

main().catch((e: Error) => { $('adapter-info').innerHTML = `<span class="bad">${e.message}</span>`; document.body.dataset.ready = 'error'; });
