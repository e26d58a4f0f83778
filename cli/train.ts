// `dit train`: a DiT on a latent cache, in a run folder (config, metrics, checkpoints, loss and sample
// pictures), resumable exactly, stopped by a non-finite loss before it can overwrite a good checkpoint.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { getDevice, describeAdapter } from '../engine/device.js';
import { readSafetensors } from '../engine/safetensors.js';
import { DiT } from '../dit/model.js';
import { ditConfig, DIT_MODEL_NAMES, type DiTConfig, type Conditioning } from '../dit/config.js';
import { LatentSet, DiTTrainer, TRAIN_DEFAULTS, checkLatentsFit, type DiTTrainConfig } from '../dit/train.js';
import { readWeights, type WeightSet } from '../dit/checkpoint.js';
import { PRESETS, PRESET_NAMES, type PresetName } from '../dit/presets.js';
import { GaussianDiffusion } from '../diffusion/gaussian.js';
import type { ScheduleName } from '../diffusion/schedule.js';
import { readVae, buildVae } from '../vae/checkpoint.js';
import { NonFiniteError } from '../engine/errors.js';
import { Run, trainLoop, readLatestCheckpoint, restoreCheckpoint, type RunConfig } from '../runs/run.js';
import { int, num, choice, existing, examples, log, usage, checkOutputs, UsageError, LIMITS } from './options.js';
import { Progress } from './progress.js';

/** Where `dit vae encode` writes its cache by default. */
const DEFAULT_LATENTS = 'out/latents.safetensors';
const CONDITIONINGS: Conditioning[] = ['adaLN-Zero', 'adaLN', 'cross-attention', 'in-context'];
/** What may change when a run is resumed (everything else comes from its config.json). */
const RESUMABLE = new Set(['resume', 'steps', 'logEvery', 'checkpointEvery', 'keep', 'sampleEvery', 'vae']);

export interface TrainOpts {
  preset?: PresetName; latents?: string; model?: string; hidden?: number; depth?: number; heads?: number; patch?: number; mlpRatio?: number;
  conditioning?: Conditioning; schedule?: ScheduleName; learnSigma: boolean; steps?: number; batch?: number; lr?: number; warmup?: number; lrSchedule?: 'constant' | 'cosine';
  weightDecay?: number; clipGrad?: number; minSnr?: number; ema?: number; emaWarmup: boolean; seed: number; run?: string; resume?: string; init?: string;
  which: 'ema' | 'model'; logEvery: number; checkpointEvery: number; keep: number; sampleEvery: number; samplesPerClass: number; vae?: string; cfg?: number;
}

export function registerTrain(program: Command): void {
  const cmd = program.command('train')
    .description('train a DiT on a latent cache (from `dit vae encode`) in a run folder; resumable')
    .addOption(choice('--preset <name>', `a tested configuration (${PRESET_NAMES.map((n) => `${n}: ${PRESETS[n].description}`).join('; ')}); flags override it`, PRESET_NAMES))
    .addOption(existing('--latents <file>', `the latent cache (safetensors: mean, logvar, labels) [default: ${DEFAULT_LATENTS}]`))
    .addOption(choice('--model <name>', 'a named DiT config (its width, depth, heads, patch)', DIT_MODEL_NAMES))
    .addOption(int('--hidden <n>', 'hidden size D', { min: 8, max: LIMITS.width }))
    .addOption(int('--depth <n>', 'number of DiT blocks', { min: 1, max: LIMITS.depth }))
    .addOption(int('--heads <n>', 'attention heads (must divide D)', { min: 1, max: LIMITS.heads }))
    .addOption(int('--patch <n>', 'patch size (must divide the latent side)', { min: 1, max: LIMITS.patch }))
    .addOption(num('--mlp-ratio <r>', 'MLP width / D', { above: 0, max: 64 }))
    .addOption(choice('--conditioning <design>', 'the paper\'s conditioning design', CONDITIONINGS))
    .addOption(choice('--schedule <name>', 'noise schedule: DiT\'s linear, or improved DDPM\'s cosine (sample it with DDIM: its last steps keep almost no signal, and DDPM through them without clipping diverges) [default: the preset\'s, else linear]', ['linear', 'cosine']))
    .option('--no-learn-sigma', 'predict ε only (fixed variance, MSE loss) instead of ε and the variance')
    .addOption(int('--steps <n>', `total training steps (resuming: the new total) [default: preset's, else ${TRAIN_DEFAULTS.steps}]`, { min: 1, max: LIMITS.steps }))
    .addOption(int('--batch <n>', `batch size [default: preset's, else ${TRAIN_DEFAULTS.batch}]`, { min: 1, max: LIMITS.batch }))
    .addOption(num('--lr <x>', `peak learning rate [default: preset's, else ${TRAIN_DEFAULTS.lr}]`, { above: 0 }))
    .addOption(int('--warmup <n>', 'linear learning-rate warm-up steps', { min: 0, max: LIMITS.steps }))
    .addOption(choice('--lr-schedule <kind>', 'after warm-up: constant, or cosine decay to 10%', ['constant', 'cosine']))
    .addOption(num('--weight-decay <x>', 'AdamW decoupled weight decay', { min: 0 }))
    .addOption(num('--clip-grad <norm>', 'clip the global gradient norm to this', { above: 0 }))
    .addOption(num('--min-snr <gamma>', 'weight the ε-MSE by min(SNR, γ)/SNR (Min-SNR-γ; 5 is the paper\'s value) [default: the preset\'s, else off: uniform as the official code]', { above: 0 }))
    .addOption(num('--ema <decay>', 'EMA decay', { min: 0, max: 1 }))
    .option('--no-ema-warmup', 'a fixed EMA decay from the start (official; poor for short runs)')
    .addOption(int('--seed <n>', 'seed of the model init and of every random stream', { min: 0, max: LIMITS.seed, def: 0 }))
    .option('--run <dir>', 'the run folder (default out/runs/<time>)')
    .addOption(existing('--resume <dir>', 'continue the run in <dir> from its latest checkpoint (with --steps as the new total)'))
    .addOption(existing('--init <ckpt>', 'start from these weights (.safetensors or .pt; released, exported or a run\'s checkpoint)'))
    .addOption(choice('--which <weights>', 'with --init from a training checkpoint: its EMA or raw model weights', ['ema', 'model'], 'ema'))
    .addOption(int('--log-every <n>', 'log metrics every n steps', { min: 1, max: LIMITS.steps, def: 25 }))
    .addOption(int('--checkpoint-every <n>', 'checkpoint every n steps (and at the end)', { min: 1, max: LIMITS.steps, def: 500 }))
    .addOption(int('--keep <n>', 'keep the newest n checkpoints', { min: 1, max: 1000, def: 3 }))
    .addOption(int('--sample-every <n>', 'sample pictures every n steps (0: at the end only; needs --vae)', { min: 0, max: LIMITS.steps, def: 500 }))
    .addOption(int('--samples-per-class <n>', 'samples per class in each picture', { min: 1, max: 100, def: 6 }))
    .addOption(existing('--vae <file>', 'the VAE that decodes sample pictures'))
    .addOption(num('--cfg <scale>', 'guidance scale of the sample pictures [default: the preset\'s, else 3]', { min: 0 }))
    .action(async (o: TrainOpts, c: Command) => { process.exitCode = await runTrain(o, c); });
  examples(cmd, [
    'dit train --preset quick --latents out/latents.safetensors --vae out/vae-small.safetensors',
    'dit train --model DiT-S/2 --steps 2000 --run out/runs/s2',
    'dit train --resume out/runs/s2 --steps 4000',
  ]);
}

const set = (c: Command, k: string) => c.getOptionValueSource(k) === 'cli';

/** The model and training configs from preset, flags and the data (flags win). */
export function buildConfigs(o: TrainOpts, c: Command, data: LatentSet): { model: DiTConfig; train: DiTTrainConfig } {
  const preset = o.preset ? PRESETS[o.preset] : null;
  const [C, h] = data.shape;
  const named = o.model ? ditConfig(o.model) : null;
  const base: Partial<DiTConfig> = { ...(named ? { hiddenSize: named.hiddenSize, depth: named.depth, numHeads: named.numHeads, patchSize: named.patchSize } : preset?.model ?? { hiddenSize: 192, depth: 6, numHeads: 6, patchSize: 2 }) };
  const flagged = ([['model', o.model], ['hidden', o.hidden], ['depth', o.depth], ['heads', o.heads], ['patch', o.patch], ['mlp-ratio', o.mlpRatio]] as const).filter(([, v]) => v !== undefined);
  if (preset && flagged.length) {
    const m = preset.model, t = preset.train;
    log(`${flagged.map(([k, v]) => `--${k} ${v}`).join(', ')} override${flagged.length > 1 ? '' : 's'} the ${o.preset} preset's model (D ${m.hiddenSize}, depth ${m.depth}, ${m.numHeads} heads, patch ${m.patchSize}); its recipe (${t.steps} steps at batch ${t.batch}, lr ${t.lr}) still applies unless flags say otherwise`);
  }
  const model = usage(() => ditConfig(undefined, {
    ...base, inputSize: h, inChannels: C, numClasses: data.numClasses,
    ...(o.hidden !== undefined ? { hiddenSize: o.hidden } : {}), ...(o.depth !== undefined ? { depth: o.depth } : {}),
    ...(o.heads !== undefined ? { numHeads: o.heads } : {}), ...(o.patch !== undefined ? { patchSize: o.patch } : {}),
    ...(o.mlpRatio !== undefined ? { mlpRatio: o.mlpRatio } : {}), ...(o.conditioning ? { conditioning: o.conditioning } : {}),
    learnSigma: o.learnSigma,
  }));
  const p: Partial<DiTTrainConfig> = preset?.train ?? {};
  const pick = <K extends keyof DiTTrainConfig>(k: K, v: DiTTrainConfig[K] | undefined): DiTTrainConfig[K] => v ?? (p[k] as DiTTrainConfig[K] | undefined) ?? TRAIN_DEFAULTS[k];
  const train: DiTTrainConfig = {
    steps: pick('steps', o.steps), batch: pick('batch', o.batch), lr: pick('lr', o.lr), warmup: pick('warmup', o.warmup),
    lrSchedule: pick('lrSchedule', o.lrSchedule), minLrRatio: TRAIN_DEFAULTS.minLrRatio, weightDecay: pick('weightDecay', o.weightDecay),
    clipGrad: o.clipGrad ?? p.clipGrad ?? null, emaDecay: pick('emaDecay', o.ema), emaWarmup: set(c, 'emaWarmup') ? o.emaWarmup : (p.emaWarmup ?? TRAIN_DEFAULTS.emaWarmup),
    minSnrGamma: o.minSnr ?? p.minSnrGamma ?? null, seed: o.seed,
  };
  return { model, train };
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
}

async function runTrain(o: TrainOpts, c: Command): Promise<number> {
  // Everything is read and checked before the GPU starts, and the run folder of a new run is made only
  // once its model has taken the --init weights: a failed start leaves no folder to dead-end the next one.
  let run: Run | null = null, cfg: RunConfig, data: LatentSet, init: WeightSet | null = null;
  let resumeFrom: Awaited<ReturnType<typeof readLatestCheckpoint>> = null;
  const runDir = o.run ?? path.join('out', 'runs', timestamp());
  if (o.resume) {
    const bad = c.options.map((x) => x.attributeName()).filter((k) => set(c, k) && !RESUMABLE.has(k));
    if (bad.length) throw new UsageError(`--resume continues a run with its own configuration; these cannot change: ${bad.map((k) => `--${k.replace(/[A-Z]/g, (m) => `-${m.toLowerCase()}`)}`).join(', ')}`);
    run = await Run.open(o.resume);
    cfg = run.config;
    for (const k of ['logEvery', 'checkpointEvery', 'keep'] as const) if (set(c, k)) cfg[k] = o[k];
    if (set(c, 'sampleEvery')) cfg.samples.every = o.sampleEvery;
    if (o.steps !== undefined) cfg.train.steps = o.steps;
    resumeFrom = await readLatestCheckpoint(run);
    if (!resumeFrom) throw new UsageError(`${run.dir} has no checkpoint yet: nothing to resume (start it again without --resume: --run ${run.dir})`);
    data = new LatentSet(await readSafetensors(cfg.data.latents));
    checkLatentsFit(data, cfg.model);
  } else {
    const latents = o.latents ?? DEFAULT_LATENTS;
    if (!existsSync(latents)) throw new UsageError(`${latents}: no such file (the default latent cache; make it with dit vae encode, or give --latents FILE)`);
    data = new LatentSet(await readSafetensors(latents));
    const { model, train } = buildConfigs(o, c, data);
    if (!o.vae) log('no --vae: the run writes no sample pictures');
    const preset = o.preset ? PRESETS[o.preset] : null;
    cfg = {
      version: 1, model, train, diffusion: { schedule: o.schedule ?? preset?.schedule ?? 'linear', steps: 1000, learnSigma: model.learnSigma },
      data: { latents: path.resolve(latents), dataset: data.dataset, count: data.count, shape: data.shape, scaleFactor: data.scale, classes: data.classes },
      vae: o.vae ? path.resolve(o.vae) : null, logEvery: o.logEvery, checkpointEvery: o.checkpointEvery, keep: o.keep,
      samples: { every: o.sampleEvery, perClass: o.samplesPerClass, steps: preset?.sample.steps ?? 50, cfg: o.cfg ?? preset?.sample.cfg ?? 3 },
      preset: o.preset ?? null, init: o.init ? path.resolve(o.init) : null,
    };
    checkOutputs({ inputs: [latents, o.init, o.vae], outputDirs: [runDir] });
    if (o.init) init = await readWeights(o.init, { ema: o.which === 'ema' });
  }
  const vaePath = o.vae ?? cfg.vae;
  const vaeFile = vaePath ? await readVae(vaePath) : null;
  const g = await getDevice();
  log(`adapter: ${describeAdapter(g.adapter)}`);
  const model = new DiT(cfg.model, {}, cfg.train.seed);
  if (init) {
    model.loadStateDict(init.tensors, { source: init.source });
    log(`initialised from ${cfg.init}${init.metadata.weights ? ` (${init.metadata.weights} weights)` : ''}`);
  }
  const trainer = new DiTTrainer(model, new GaussianDiffusion({ learnSigma: cfg.model.learnSigma, schedule: cfg.diffusion.schedule }), data, cfg.train);
  if (resumeFrom && run) {
    restoreCheckpoint(trainer, resumeFrom);
    await run.truncateMetrics(trainer.step);
    log(`resumed ${run.dir} at step ${trainer.step} from ${resumeFrom.file}; training to step ${cfg.train.steps}`);
    if (trainer.step >= cfg.train.steps) { log(`already at step ${trainer.step}: give a larger --steps to continue`); return 0; }
  } else {
    run = await Run.create(runDir, cfg);
  }
  const m = cfg.model;
  log(`DiT D ${m.hiddenSize}, depth ${m.depth}, ${m.numHeads} heads, patch ${m.patchSize} (${(m.inputSize / m.patchSize) ** 2} tokens), ${m.conditioning}, ${model.numParameters().toLocaleString('en-US')} parameters; ${data.count} latents [${data.shape.join(', ')}]; batch ${cfg.train.batch}, lr ${cfg.train.lr}; run folder ${run.dir}`);
  const vae = vaeFile ? buildVae(vaeFile) : null;
  const t0 = performance.now(), start = trainer.step;
  const progress = new Progress('training', cfg.train.steps, start);
  try {
    await trainLoop(run, trainer, vae, {
      onMetrics: (x) => progress.update(x.step, `loss ${x.loss.toFixed(4)}, ${x.stepsPerSec.toFixed(2)} steps/s, ${x.imagesPerSec.toFixed(0)} img/s, ${x.liveMiB.toFixed(0)} MiB live`),
      onCheckpoint: (f) => log(`  checkpoint ${f}`),
      onPicture: (f) => log(`  samples ${f}`),
    });
  } catch (e) {
    if (!(e instanceof NonFiniteError)) throw e;
    const last = await run.latest();
    log(`dit train: ${e.message}; stopped. The last good checkpoint is ${last ?? '(none: no checkpoint was written before it)'}. Try a lower --lr or --clip-grad 1.`);
    return 3;
  }
  const secs = (performance.now() - t0) / 1000;
  process.stdout.write(`trained steps ${start + 1}–${trainer.step} in ${secs.toFixed(0)} s (${((trainer.step - start) / secs).toFixed(2)} steps/s); run folder ${run.dir}: metrics.jsonl, loss.png, checkpoints/ (latest: ${path.basename((await run.latest()) ?? '')})${vae ? `, samples-${trainer.step}.png` : ''}\n`);
  trainer.dispose();
  model.dispose();
  return 0;
}

