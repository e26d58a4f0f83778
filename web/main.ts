// The browser page: train a DiT (built-in dataset generated here, or IDX / CIFAR-10 files picked; latents
// from the shipped or a picked VAE), sample from it or from a checkpoint file, evaluate the samples with the
// shipped judge, and check parity and every kernel variant on this adapter — all with the same modules as
// the Node commands (dit/train.ts, eval/samples.ts, eval/quality.ts, engine/safetensors.ts).
// `window.dit` exposes the actions and their state for automated tests.
import { Chart, registerables } from 'chart.js';
import { getDevice, describeAdapter } from '../engine/device.js';
import { Tensor, scope, noGrad, keep } from '../engine/tensor.js';
import { CheckpointError, DeviceError } from '../engine/errors.js';
import { Safetensors, TensorSource, serializeSafetensors, metadataJson } from '../engine/safetensors.js';
import { matmul } from '../kernels/matmul.js';
import { randn } from '../kernels/random.js';
import { timeGpu } from '../kernels/autotune.js';
import { flashAttention } from '../kernels/attention.js';
import { slice } from '../kernels/shape.js';
import { scale as scaleOp } from '../kernels/elementwise.js';
import { FAMILIES, checkVariant, type VariantCheck } from '../kernels/registry.js';
import { weightsFromSource, weightsFromBytes, ditFromWeights } from '../dit/checkpoint.js';
import { compare } from '../verify/report.js';
import { DiT } from '../dit/model.js';
import { LatentSet, DiTTrainer } from '../dit/train.js';
import { RECIPES, samplingFor, type RecipeName } from '../dit/recipes.js';
import type { Objective } from '../diffusion/objective.js';
import type { Sampling, SamplerName } from '../diffusion/sample.js';
import { planRun, dataInfo, checkpointMetadata, type RunConfig } from '../runs/plan.js';
import { trainLoop, samplePicture } from '../runs/loop.js';
import { AutoencoderKL } from '../vae/model.js';
import { vaeFromBytes } from '../vae/checkpoint.js';
import { encodeLatents } from '../vae/train.js';
import { generateSynthetic, SYNTHETIC_CLASSES } from '../data/synthetic.js';
import { parseCifar10, fashionMnistFromIdx, parseIdx } from '../data/readers.js';
import { subset, type ImageDataset } from '../data/dataset.js';
import { toImage, grid, type Image } from '../data/png.js';
import { lossChart } from '../data/plot.js';
import { sampleImages, classLabels } from '../eval/samples.js';
import { classifierFromSafetensors } from '../eval/classifier.js';
import { realFeatures, evaluateSamples, type QualityReport } from '../eval/quality.js';

Chart.register(...registerables);

const $ = (id: string) => document.getElementById(id)!;
const input = (id: string) => $(id) as HTMLInputElement;
const button = (id: string) => $(id) as HTMLButtonElement;
/** Lets the page repaint between long stretches of work. */
const frame = () => new Promise<void>((r) => setTimeout(r, 0));
const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => `&${({ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot' } as Record<string, string>)[c]};`);

const SHIPPED_VAE = 'weights/vae-synthetic.safetensors';
const SHIPPED_JUDGE = 'weights/classifier-synthetic.safetensors';
/** The DiT this project trained with its default recipe (weights/README.md): sampled on opening, as `dit sample` without --weights. */
const SHIPPED_DIT = 'weights/dit-synthetic.safetensors';

/** What went wrong, said so that the person at the page knows what to do. */
export function explain(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  if (e instanceof CheckpointError) return `Not a checkpoint this page can read — ${m}`;
  if (/out of memory|exceeds the adapter's max|Failed to allocate|allocation/i.test(m)) return `Out of GPU memory — ${m}\nTry the tiny preset, fewer images or samples, or reload the page.`;
  if (/lacks|feature/i.test(m)) return `This adapter lacks a WebGPU feature this needs — ${m}`;
  if (/device was lost/.test(m)) return `${m}\nReload the page to get a new device.`;
  return m;
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const r = await fetch(`/${url}`);
  if (!r.ok) throw new Error(`${url}: the server answered ${r.status} (run the page with \`npm run web\` from the repository)`);
  return new Uint8Array(await r.arrayBuffer());
}

const fileBytes = async (f: File) => new Uint8Array(await f.arrayBuffer());

/** A picked file's bytes, gunzipped when it is gzip (Fashion-MNIST ships as .gz). */
async function maybeGunzip(f: File): Promise<{ name: string; bytes: Uint8Array }> {
  const bytes = await fileBytes(f);
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return { name: f.name, bytes };
  try {
    const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new DecompressionStream('gzip'));
    return { name: f.name, bytes: new Uint8Array(await new Response(stream).arrayBuffer()) };
  } catch (e) {
    throw new Error(`${f.name}: not a valid gzip file (${(e as Error).message})`);
  }
}

/** A dataset from picked files: an IDX images + labels pair (Fashion-MNIST) or CIFAR-10 binary batches. */
async function datasetFromFiles(files: File[]): Promise<{ data: ImageDataset; name: string }> {
  if (!files.length) throw new Error('pick the dataset files (a Fashion-MNIST IDX images + labels pair, or CIFAR-10 .bin batches), or choose the built-in data');
  const all = await Promise.all(files.map(maybeGunzip));
  const magic = (b: Uint8Array) => (b.byteLength >= 4 ? new DataView(b.buffer, b.byteOffset, 4).getUint32(0, false) : -1);
  const images = all.find((f) => magic(f.bytes) === 0x803), labels = all.find((f) => magic(f.bytes) === 0x801);
  if (images && labels) return { data: fashionMnistFromIdx(images, labels), name: 'fashion-mnist' };
  if (images || labels) {
    const have = images ?? labels!;
    parseIdx(have.bytes, have.name, images ? 3 : 1);
    throw new Error(`${have.name}: an IDX ${images ? 'images' : 'labels'} file needs its ${images ? 'labels' : 'images'} file too: pick both`);
  }
  return { data: parseCifar10(all), name: 'cifar10' };
}

async function loadVaeFile(f: File | undefined): Promise<{ vae: AutoencoderKL; name: string }> {
  if (f) return { vae: vaeFromBytes(await fileBytes(f), f.name), name: f.name };
  return { vae: vaeFromBytes(await fetchBytes(SHIPPED_VAE), SHIPPED_VAE), name: SHIPPED_VAE };
}

/** Images of a dataset as one picture: `cols` per row, scaled ×`zoom`. */
function drawGrid(canvas: HTMLCanvasElement, d: ImageDataset, cols: number, zoom: number): Image {
  const per = d.channels * d.height * d.width;
  const imgs = Array.from({ length: d.count }, (_, i) => toImage(Float32Array.from(d.images.subarray(i * per, (i + 1) * per), (v) => v / 127.5 - 1), d.channels, d.height, d.width));
  return paint(canvas, grid(imgs, cols, zoom));
}

function paint(canvas: HTMLCanvasElement, img: Image): Image {
  canvas.width = img.width; canvas.height = img.height;
  canvas.getContext('2d')!.putImageData(new ImageData(new Uint8ClampedArray(img.rgba), img.width, img.height), 0, 0);
  return img;
}

// ------------------------------------------------------------------------------------------ the model
/** The model that Sample and Evaluate use: the last one trained here, or a loaded checkpoint. */
interface Current { model: DiT; vae: AutoencoderKL | null; vaeName: string | null; scale: number | null; classes: string[]; objective: Objective; sampling: Sampling; source: string }
let current: Current | null = null;

function setCurrent(c: Current): void {
  if (current && current.model !== c.model) current.model.dispose();
  if (current?.vae && current.vae !== c.vae) current.vae.dispose();
  current = c;
  const m = c.model.config;
  $('ckpt-info').textContent = `${c.source}: DiT D ${m.hiddenSize}, depth ${m.depth}, patch ${m.patchSize}, ${m.inChannels}×${m.inputSize}×${m.inputSize} latents, ${m.numClasses} classes (${c.classes.join(', ')}); ${c.objective.kind === 'flow' ? 'flow matching' : `ε-prediction, ${c.objective.schedule} schedule`}; VAE: ${c.vaeName ?? 'none yet (the shipped one is fetched when sampling)'}`;
  input('labels').value = Array.from({ length: Math.min(m.numClasses, 10) }, (_, i) => i).join(',');
  // The form starts at how the model is meant to be sampled (its recipe, else the official sample.py).
  input('steps').value = String(c.sampling.steps);
  input('cfg').value = String(c.sampling.cfg);
  ($('sampler') as HTMLSelectElement).value = c.sampling.sampler;
  for (const b of ['run-sample', 'run-eval']) button(b).disabled = false;
}

/** A checkpoint from a file (safetensors: ours or official names; torch .pt: released or training checkpoints; EMA weights when it has them). */
async function loadCheckpoint(f: File): Promise<Current> {
  const w = await weightsFromBytes(await fileBytes(f), f.name);
  const model = ditFromWeights(w);
  model.eval();
  const classes = metadataJson<string[]>(w.metadata, 'classes', f.name) ?? Array.from({ length: model.config.numClasses }, (_, i) => `class${i}`);
  const how = samplingFor(w.metadata, {}, f.name);
  // Weights without a recipe: the official objective as their shapes and metadata say.
  const objective: Objective = how.fromRecipe ? how.objective : { kind: 'eps', schedule: w.metadata.schedule === 'cosine' ? 'cosine' : 'linear', learnSigma: model.config.learnSigma, minSnrGamma: null };
  const c: Current = {
    model, vae: current?.vae ?? null, vaeName: current?.vaeName ?? null, scale: w.metadata.scale_factor ? Number(w.metadata.scale_factor) : null, classes,
    objective, sampling: how.sampling, source: `${f.name}${w.metadata.weights ? ` (${w.metadata.weights} weights${w.metadata.step ? `, step ${w.metadata.step}` : ''})` : ''}`,
  };
  setCurrent(c);
  return c;
}

/** The VAE to decode with (the shipped one unless one was picked), checked against the model's latents. */
async function vaeForCurrent(c: Current): Promise<{ vae: AutoencoderKL; scale: number }> {
  if (!c.vae) {
    const v = await loadVaeFile(undefined);
    c.vae = v.vae; c.vaeName = v.name;
  }
  const m = c.model.config, L = c.vae.config.latentChannels;
  if (L !== m.inChannels) throw new Error(`${c.vaeName}: the VAE's latents have ${L} channels, the DiT takes ${m.inChannels}: pick the VAE it was trained with`);
  // As `dit sample`: the checkpoint's latent scale, else the VAE's.
  return { vae: c.vae, scale: c.scale ?? c.vae.config.scalingFactor };
}

// ------------------------------------------------------------------------------------------ training
export interface TrainOptions {
  preset?: RecipeName; steps?: number; images?: number; sampleEvery?: number; logEvery?: number;
  /** Sampling steps and samples per class of the pictures made while training (default: the preset's, 2). */
  sampleSteps?: number; samplesPerClass?: number;
}
export interface TrainState { running: boolean; paused: boolean; step: number; total: number; losses: { step: number; loss: number }[]; stepsPerSec: number; pictures: number; error: string | null }

const train: TrainState & { trainer: DiTTrainer | null; plan: RunConfig | null; resume: (() => void) | null; chart: Chart | null } = {
  running: false, paused: false, step: 0, total: 0, losses: [], stepsPerSec: NaN, pictures: 0, error: null, trainer: null, plan: null, resume: null, chart: null,
};

function trainState(): TrainState {
  const { running, paused, step, total, losses, stepsPerSec, pictures, error } = train;
  return { running, paused, step, total, losses, stepsPerSec, pictures, error };
}

function drawLoss(): void {
  const config = lossChart(train.losses, 'DiT training loss (this page)');
  if (train.chart) { train.chart.data = config.data; train.chart.update('none'); return; }
  train.chart = new Chart($('loss-chart') as HTMLCanvasElement, config);
}

async function runTrain(o: TrainOptions = {}): Promise<TrainState> {
  const status = (s: string) => { $('train-status').textContent = s; };
  const presetName = o.preset ?? ($('preset') as HTMLSelectElement).value as RecipeName;
  if (!Object.hasOwn(RECIPES, presetName)) throw new Error(`no preset '${presetName}'`);
  train.trainer?.model.dispose();
  train.trainer?.dispose();
  Object.assign(train, { trainer: null, running: true, paused: false, step: 0, losses: [], stepsPerSec: NaN, pictures: 0, error: null });
  train.chart?.destroy();
  train.chart = null;
  button('download-ckpt').disabled = true;
  try {
    return await trainRun(o, presetName, status);
  } finally {
    train.running = false;
    button('pause').disabled = true;
    button('pause').textContent = 'Pause';
  }
}

async function trainRun(o: TrainOptions, presetName: RecipeName, status: (s: string) => void): Promise<TrainState> {

  // The data, then its latents under the VAE (in memory, as `dit vae encode` writes them).
  let data: ImageDataset, dataName: string;
  const count = o.images ?? +input('train-images').value;
  if (($('data-source') as HTMLSelectElement).value === 'files') {
    status('reading the dataset files…');
    ({ data, name: dataName } = await datasetFromFiles([...(input('data-files').files ?? [])]));
    data = subset(data, count);
  } else {
    status(`generating ${count} built-in images…`);
    await frame();
    data = generateSynthetic(0, 0, count);
    dataName = 'synthetic';
  }
  status('loading the VAE…');
  const { vae, name: vaeName } = await loadVaeFile(input('train-vae-file').files?.[0]);
  if (vae.config.inChannels !== data.channels) throw new Error(`${vaeName}: the VAE takes ${vae.config.inChannels}-channel images, the ${dataName} data has ${data.channels}: pick a VAE trained on it`);
  const enc = await encodeLatents(vae, data, { scaleFromData: true, dataset: dataName, onProgress: (n) => status(`encoding latents: ${n}/${data.count}`) });
  const bytes = serializeSafetensors(enc.tensors, enc.metadata);
  const latents = new LatentSet(new Safetensors(new Uint8Array(await new Blob(bytes as BlobPart[]).arrayBuffer()), 'latents encoded in the page'));

  // The run as `dit train --preset` plans it, trained by the same loop.
  const plan = planRun(presetName, dataInfo(latents, `${count} ${dataName} images encoded in the page`),
    { optim: { steps: o.steps ?? +input('train-steps').value }, ...(o.sampleSteps ? { sampling: { steps: o.sampleSteps } } : {}) },
    { vae: vaeName, logEvery: o.logEvery ?? 5, pictures: { every: o.sampleEvery ?? +input('sample-every').value, perClass: o.samplesPerClass ?? 2 }, snapshots: 0 });
  const r = plan.recipe;
  const model = new DiT(plan.model, {}, plan.seed);
  const trainer = new DiTTrainer(model, r.objective, latents, { ...r.optim, seed: plan.seed }, r.alignment);
  Object.assign(train, { trainer, plan, total: r.optim.steps });
  const scratch = new DiT(plan.model, {}, 0);
  const ema: Current = { model: scratch, vae, vaeName, scale: latents.scale, classes: latents.classes, objective: r.objective, sampling: r.sampling, source: `trained here (${presetName}, EMA weights)` };
  const t0 = performance.now();
  status(`training: ${model.numParameters().toLocaleString('en-US')} parameters, batch ${r.optim.batch}, ${latents.count} latents`);
  button('pause').disabled = false;
  try {
    await trainLoop(trainer, plan, {
      beforeStep: async () => {
        if (!train.paused) return;
        button('download-ckpt').disabled = false;
        status(`paused at step ${trainer.step}`);
        await new Promise<void>((res) => { train.resume = res; });
        button('download-ckpt').disabled = true;
        status('training');
        // The pause is not training time (steps/s and the ETA count training only).
        trainer.resetClock();
      },
      onMetrics: (m) => {
        train.losses.push({ step: m.step, loss: m.loss });
        train.step = m.step;
        train.stepsPerSec = m.step / trainer.trainSeconds;
        const eta = (r.optim.steps - m.step) / train.stepsPerSec;
        $('train-speed').textContent = `step ${m.step}/${r.optim.steps} · loss ${m.loss.toFixed(4)} · ${train.stepsPerSec.toFixed(2)} steps/s · ETA ${eta < 90 ? `${eta.toFixed(0)} s` : `${(eta / 60).toFixed(1)} min`} · ${m.liveMiB.toFixed(0)} MiB on the GPU`;
        drawLoss();
      },
      onPicture: async (step) => {
        status(`sampling from the EMA weights at step ${step}…`);
        drawGrid($('train-samples') as HTMLCanvasElement, await samplePicture(trainer, scratch, vae, plan), plan.pictures.perClass * 5, 2);
        train.pictures++;
        status(`training (samples of step ${step} shown)`);
      },
    });
  } catch (e) {
    scratch.dispose();
    throw e;
  }
  trainer.useEma(scratch);
  status(`done: ${r.optim.steps} steps in ${((performance.now() - t0) / 1000).toFixed(0)} s; the EMA weights are the model of Sample and Evaluate`);
  button('download-ckpt').disabled = false;
  setCurrent(ema);
  return trainState();
}

function togglePause(): void {
  if (!train.running) return;
  train.paused = !train.paused;
  button('pause').textContent = train.paused ? 'Resume' : 'Pause';
  if (!train.paused) { train.resume?.(); train.resume = null; }
}

/** The training checkpoint as `dit train` writes it (weights, EMA, AdamW state, random streams, metadata), as bytes; refused when any value is not finite. */
async function checkpointBytes(): Promise<Uint8Array> {
  if (!train.trainer) throw new Error('nothing trained yet');
  if (train.running && !train.paused) throw new Error('pause training first (a checkpoint is read between steps)');
  const { tensors, metadata } = await train.trainer.checkpoint(checkpointMetadata(train.plan!, train.trainer.step, train.trainer.trainSeconds));
  return new Uint8Array(await new Blob(serializeSafetensors(tensors, metadata) as BlobPart[]).arrayBuffer());
}

function download(blob: Blob, name: string): void {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

// ------------------------------------------------------------------------------------------ sampling
export interface SampleOptions { labels?: number[]; steps?: number; cfg?: number; sampler?: SamplerName; seed?: number }
export interface SampleResult { images: number; steps: number; ms: number; width: number; height: number; cols: number; zoom: number }

function sampleOptionsFromForm(): Required<SampleOptions> {
  const labels = input('labels').value.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  return { labels, steps: +input('steps').value, cfg: +input('cfg').value, sampler: ($('sampler') as HTMLSelectElement).value as SamplerName, seed: +input('seed').value };
}

async function runSample(o: SampleOptions = {}): Promise<SampleResult> {
  if (!current) throw new Error('no model: train one or load a checkpoint first');
  const c = current, form = sampleOptionsFromForm();
  const { labels, steps, cfg, sampler, seed } = { ...form, ...o };
  const K = c.model.config.numClasses;
  const bad = labels.find((l) => !Number.isInteger(l) || l < 0 || l >= K);
  if (bad !== undefined || !labels.length) throw new Error(`classes: ${bad ?? '(none)'} is not a class of this model (0–${K - 1})`);
  const { vae, scale } = await vaeForCurrent(c);
  const bar = $('progress') as HTMLProgressElement;
  bar.max = steps; bar.value = 0;
  const canvas = $('sample-grid') as HTMLCanvasElement;
  const cols = Math.min(10, labels.length), zoom = 3, n = labels.length;
  const t0 = performance.now();
  const d = await sampleImages(c.model, vae, scale, labels, c.classes, {
    objective: c.objective, sampling: { ...c.sampling, sampler, steps, cfg }, seed,
    onStep: async ({ step, total, predXstart }) => {
      bar.value = step + 1;
      $('sample-status').textContent = `step ${step + 1}/${total}`;
      // The predicted clean images (x̂0) every few steps; with guidance the first half is the conditional batch.
      if (step % 5 !== 4 || step + 1 >= total) return;
      const x = scope(() => noGrad(() => vae.decode(scaleOp(slice(predXstart, 0, 0, n), 1 / scale))));
      const [, C, H, W] = x.shape, per = C * H * W, v = (await x.data()) as Float32Array;
      x.dispose();
      paint(canvas, grid(Array.from({ length: n }, (_, i) => toImage(v.subarray(i * per, (i + 1) * per), C, H, W)), cols, zoom));
    },
  });
  drawGrid(canvas, d, cols, zoom);
  const ms = performance.now() - t0;
  $('sample-status').textContent = `${n} samples, ${sampler} ${steps} steps, guidance ${cfg}, seed ${seed}: ${(ms / 1000).toFixed(1)} s`;
  button('download-png').disabled = false;
  return { images: n, steps, ms, width: canvas.width, height: canvas.height, cols, zoom };
}

// ------------------------------------------------------------------------------------------ evaluation
async function runEvaluate(o: { perClass?: number; real?: number; steps?: number; cfg?: number } = {}): Promise<QualityReport> {
  if (!current) throw new Error('no model: train one or load a checkpoint first');
  const c = current;
  const status = (s: string) => { $('eval-status').textContent = s; };
  if (c.model.config.numClasses !== SYNTHETIC_CLASSES.length || c.classes.some((k, i) => k !== SYNTHETIC_CLASSES[i])) {
    throw new Error(`the shipped judge knows the built-in dataset's classes (${SYNTHETIC_CLASSES.join(', ')}); this model's are ${c.classes.join(', ')}`);
  }
  const { vae, scale } = await vaeForCurrent(c);
  status('loading the judge…');
  const { model: judge } = classifierFromSafetensors(new Safetensors(await fetchBytes(SHIPPED_JUDGE), SHIPPED_JUDGE));
  try {
    const realCount = o.real ?? +input('eval-real').value, perClass = o.perClass ?? +input('eval-per-class').value;
    status(`generating ${realCount} real test images…`);
    await frame();
    // The built-in test split (split 1), as `dit eval --data synthetic` reads it.
    const real = await realFeatures(judge, generateSynthetic(0, 1, realCount), (n, t) => status(`judging real images: ${n}/${t}`));
    const form = sampleOptionsFromForm();
    const samples = await sampleImages(c.model, vae, scale, classLabels(c.model.config.numClasses, perClass), c.classes, {
      objective: c.objective, sampling: { ...c.sampling, steps: o.steps ?? form.steps, cfg: o.cfg ?? form.cfg, sampler: form.sampler }, seed: form.seed,
      onStep: ({ step, total }, start) => status(`sampling ${start + 1}…: step ${step + 1}/${total}`),
    });
    const r = await evaluateSamples(judge, samples, real, (n, t) => status(`judging samples: ${n}/${t}`));
    $('eval-result').innerHTML = `<tr><th>judge's accuracy on the samples</th><td>${(100 * r.accuracy).toFixed(1)}% (chance 10%)</td></tr>`
      + `<tr><th>Fréchet distance (samples vs real)</th><td>${r.frechet.toFixed(3)}</td></tr>`
      + `<tr><th>its floor (${r.samples} real images vs real)</th><td>${r.frechet_real.toFixed(3)}</td></tr>`
      + `<tr><th>judge's accuracy on real test images</th><td>${(100 * r.classifier_test_accuracy).toFixed(1)}%</td></tr>`
      + `<tr><th>per class</th><td>${Object.entries(r.per_class).map(([k, v]) => `${escapeHtml(k)} ${(100 * v).toFixed(0)}%`).join(', ')}</td></tr>`;
    status(`${r.samples} samples against ${r.reference_images} reference images`);
    return r;
  } finally {
    judge.dispose();
  }
}

// ------------------------------------------------------------------------------------------ checks
export interface ParityResult { forward: number; cfg: number; pass: boolean }

/** Recomputes out.forward and cfg.out_scale4.0 of the reference dump; rel-to-max errors. */
async function runParity(): Promise<ParityResult> {
  const st = new Safetensors(await fetchBytes('reference/dit_tiny_p2.safetensors'), 'reference/dit_tiny_p2.safetensors');
  const model = ditFromWeights({ tensors: weightsFromSource(new TensorSource([st], new Map(st.keys().map((k) => [k, st])), st.source)), metadata: st.metadata, source: st.source });
  model.eval();
  const T = (k: string) => Tensor.from(st.f32(k), st.shape(k));
  const ints = (k: string) => Array.from(st.f32(k), Math.round);
  const out = scope(() => noGrad(() => model.forward(T('inputs.x'), ints('inputs.t'), ints('inputs.y'))));
  const forward = compare((await out.data()) as Float32Array, st.f32('out.forward')).error;
  const cfgOut = scope(() => noGrad(() => model.forwardWithCfg(T('cfg.x'), ints('cfg.t'), ints('cfg.y'), 4)));
  const cfg = compare((await cfgOut.data()) as Float32Array, st.f32('cfg.out_scale4.0')).error;
  for (const t of [out, cfgOut]) t.dispose();
  model.dispose();
  return { forward, cfg, pass: forward < 1e-4 && cfg < 1e-4 };
}

export interface KernelCheckRow extends VariantCheck { family: string; variant: string }

/** Every variant of every family of the kernel registry (the list test/kernels.test.ts checks), forward and backward. */
async function runKernelChecks(o: { families?: string[] } = {}): Promise<KernelCheckRow[]> {
  const rows: KernelCheckRow[] = [];
  const table = $('kernel-checks');
  table.innerHTML = '<tr><th>family</th><th>variant</th><th>problems run</th><th>result</th></tr>';
  for (const f of FAMILIES.filter((x) => !o.families || o.families.includes(x.name))) {
    for (const v of Object.keys(f.variants)) {
      $('kernel-status').textContent = `${f.name} ${v}…`;
      const row: KernelCheckRow = { family: f.name, variant: v, ...await checkVariant(f, v) };
      rows.push(row);
      const result = row.failures.length ? `<span class="bad">${escapeHtml(row.failures.join('; '))}</span>` : row.ran ? '<span class="ok">pass</span>' : `<span class="muted">not run here: ${escapeHtml([...new Set(row.notRun.map((n) => n.slice(n.indexOf(': ') + 2)))].join(', '))}</span>`;
      table.insertAdjacentHTML('beforeend', `<tr><td>${f.name}</td><td>${v}</td><td>${row.ran} of ${row.ran + row.notRun.length}</td><td>${result}</td></tr>`);
      await frame();
    }
  }
  return rows;
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

// ------------------------------------------------------------------------------------------ wiring
/**
 * Runs `f` from a button: the button is disabled meanwhile, the result or a clear error goes to `status`,
 * and the page stays usable whatever happens (errors are shown, never left pending).
 */
function action<A extends unknown[], T>(btn: string, status: string, f: (...a: A) => Promise<T>, fmt: (r: T) => string): (...a: A) => Promise<T> {
  return async (...a: A) => {
    button(btn).disabled = true;
    try {
      const r = await f(...a);
      $(status).innerHTML = fmt(r);
      return r;
    } catch (e) {
      $(status).innerHTML = `<span class="bad">${escapeHtml(explain(e))}</span>`;
      throw e;
    } finally {
      button(btn).disabled = false;
    }
  };
}

const quiet = (p: Promise<unknown>) => { p.catch(() => { /* shown on the page by action() */ }); };

async function main(): Promise<void> {
  if (!('gpu' in navigator)) {
    throw new Error(`This browser has no WebGPU (navigator.gpu is missing). Use Chrome or Edge 113+ (on Linux: chrome://flags/#enable-unsafe-webgpu, or run Chromium with --enable-unsafe-webgpu), over https or localhost (this page: ${location.origin}).`);
  }
  const g = await getDevice();
  const a = g.adapter;
  const has = (f: string) => a.features.includes(f);
  $('adapter-info').textContent = `${describeAdapter(a)} — shader-f16 ${has('shader-f16') ? 'yes' : 'no'}, subgroups ${has('subgroups') ? `yes (size ${a.subgroupMinSize || '?'}–${a.subgroupMaxSize || '?'})` : 'no'}, timestamp-query ${has('timestamp-query') ? 'yes' : 'no'}; subgroup size ${a.subgroupMinSize || '?'}`;
  input('train-steps').value = String(RECIPES.tiny.optim.steps);
  $('preset').addEventListener('change', () => { input('train-steps').value = String(RECIPES[($('preset') as HTMLSelectElement).value as RecipeName].optim.steps); });

  const trainAction = action('train', 'train-status', runTrain, (r) => `done: ${r.step} steps, loss ${r.losses[0]?.loss.toFixed(3)} → ${r.losses[r.losses.length - 1]?.loss.toFixed(3)}, ${r.stepsPerSec.toFixed(2)} steps/s`);
  const train_ = async (o?: TrainOptions) => {
    try { return await trainAction(o); } catch (e) { train.error = explain(e); throw e; }
  };
  const loadAction = action('ckpt-file', 'ckpt-info', loadCheckpoint, (c) => escapeHtml($('ckpt-info').textContent ?? c.source));
  const sample = action('run-sample', 'sample-status', runSample, () => $('sample-status').innerHTML);
  const evaluate = action('run-eval', 'eval-status', runEvaluate, () => $('eval-status').innerHTML);
  const parity = action('run-parity', 'parity', runParity, (r) => `<span class="${r.pass ? 'ok' : 'bad'}">forward ${r.forward.toExponential(2)}, guided ${r.cfg.toExponential(2)} (rel-to-max; tolerance 1e-4) — ${r.pass ? 'PASS' : 'FAIL'}</span>`);
  const kernels = action('run-kernel-checks', 'kernel-status', runKernelChecks, (rows) => {
    const failed = rows.filter((r) => r.failures.length).length, ran = rows.filter((r) => r.ran).length;
    return `<span class="${failed ? 'bad' : 'ok'}">${ran} of ${rows.length} variants ran, ${failed} failed</span>`;
  });
  const bench = action('run-bench', 'bench-status', runBench, () => 'done');
  const loadVaeForSampling = action('sample-vae-file', 'ckpt-info', async (f: File) => {
    const v = await loadVaeFile(f);
    if (current) { current.vae?.dispose(); current.vae = v.vae; current.vaeName = v.name; setCurrent(current); } else v.vae.dispose();
    return v.name;
  }, (name) => escapeHtml(current ? $('ckpt-info').textContent ?? name : `${name}: load a checkpoint first`));

  $('train').addEventListener('click', () => quiet(train_()));
  $('pause').addEventListener('click', togglePause);
  $('download-ckpt').addEventListener('click', () => quiet(action('download-ckpt', 'train-status', checkpointBytes, () => `checkpoint of step ${train.step} downloaded`)().then((b) => download(new Blob([b as BlobPart]), `dit-${train.plan?.preset}-step${train.step}.safetensors`))));
  $('ckpt-file').addEventListener('change', () => { const f = input('ckpt-file').files?.[0]; if (f) quiet(loadAction(f)); });
  $('sample-vae-file').addEventListener('change', () => { const f = input('sample-vae-file').files?.[0]; if (f) quiet(loadVaeForSampling(f)); });
  const drop = $('drop-zone');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const f = e.dataTransfer?.files[0];
    if (f) quiet(loadAction(f));
  });
  $('run-sample').addEventListener('click', () => quiet(sample()));
  $('download-png').addEventListener('click', () => ($('sample-grid') as HTMLCanvasElement).toBlob((b) => { if (b) download(b, 'dit-samples.png'); }, 'image/png'));
  $('run-eval').addEventListener('click', () => quiet(evaluate()));
  $('run-parity').addEventListener('click', () => quiet(parity()));
  $('run-kernel-checks').addEventListener('click', () => quiet(kernels()));
  $('run-bench').addEventListener('click', () => quiet(bench()));
  (window as unknown as { dit: object }).dit = { adapter: a, runParity, runKernelChecks, runBench, runTrain: train_, trainState, runSample, runEvaluate, explain };
  // What the project can do, in seconds: the shipped DiT's samples, one per class (a server without it: none).
  const shipped = await fetchBytes(SHIPPED_DIT).catch(() => null);
  if (shipped) {
    try {
      const c = await loadAction(new File([shipped as BlobPart], SHIPPED_DIT));
      await sample({ labels: classLabels(c.model.config.numClasses, 1) });
      $('sample-status').textContent = `the shipped DiT (${SHIPPED_DIT}): ${$('sample-status').textContent}`;
    } catch { /* shown on the page by action(); the rest of the page works without it */ }
  }
  document.body.dataset.ready = '1';
}

main().catch((e: unknown) => {
  const msg = e instanceof DeviceError && /No WebGPU adapter/.test(e.message) ? `WebGPU is available but gave no adapter. ${e.message}` : explain(e);
  $('adapter-info').textContent = 'unavailable';
  $('env-error').textContent = msg;
  for (const b of document.querySelectorAll('button')) b.disabled = true;
  document.body.dataset.ready = 'error';
});
