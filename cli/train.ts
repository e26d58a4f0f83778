// `dit train`: a DiT on a latent cache, in a run folder (config, metrics, checkpoints, loss and sample
// pictures), resumable exactly, stopped by a non-finite loss before it can overwrite a good checkpoint.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { getDevice, describeAdapter } from '../engine/device.js';
import { readSafetensors } from '../engine/safetensors.js';
import { DiT } from '../dit/model.js';
import { ditConfig, DIT_MODEL_NAMES, type Conditioning } from '../dit/config.js';
import { LatentSet, DiTTrainer, checkLatentsFit } from '../dit/train.js';
import { readWeights, type WeightSet } from '../dit/checkpoint.js';
import { RECIPES, RECIPE_NAMES, DEFAULT_RECIPE, type RecipeName, type ModelRecipe, type OptimRecipe } from '../dit/recipes.js';
import { SAMPLER_NAMES, type SamplerName, type Sampling } from '../diffusion/sample.js';
import type { Objective } from '../diffusion/objective.js';
import type { TimeDensity } from '../diffusion/flow.js';
import type { Alignment } from '../dit/align.js';
import type { ScheduleName } from '../diffusion/schedule.js';
import { readVae, buildVae } from '../vae/checkpoint.js';
import { NonFiniteError } from '../engine/errors.js';
import { Run, trainRun, readLatestCheckpoint, restoreCheckpoint, type RunConfig } from '../runs/run.js';
import { planRun, dataInfo, trainMultiplyAdds, RUN_DEFAULTS, type RunOverrides } from '../runs/plan.js';
import { int, num, choice, existing, examples, log, usage, checkOutputs, cfgIntervalOption, UsageError, LIMITS } from './options.js';
import { Progress } from './progress.js';

/** Where `dit vae encode` writes its cache by default. */
const DEFAULT_LATENTS = 'out/latents.safetensors';
const CONDITIONINGS: Conditioning[] = ['adaLN-Zero', 'adaLN', 'cross-attention', 'in-context'];
/** What may change when a run is resumed (everything else comes from its config.json). */
const RESUMABLE = new Set(['resume', 'steps', 'logEvery', 'checkpointEvery', 'keep', 'sampleEvery', 'snapshots', 'vae']);

export interface TrainOpts {
  preset: RecipeName; latents?: string; model?: string; hidden?: number; depth?: number; heads?: number; patch?: number; mlpRatio?: number;
  conditioning?: Conditioning; objective?: 'eps' | 'flow'; schedule?: ScheduleName; learnSigma: boolean; minSnr?: number; timesteps?: TimeDensity;
  steps?: number; batch?: number; lr?: number; warmup?: number; lrSchedule?: 'constant' | 'cosine'; weightDecay?: number; beta2?: number; clipGrad?: number;
  ema?: number; emaWarmup: boolean; align: boolean; alignDepth?: number; alignWeight?: number; alignUntil?: number; sampler?: SamplerName; sampleSteps?: number; cfg?: number; cfgInterval?: [number, number]; guide?: 'all' | 'official';
  seed: number; run?: string; resume?: string; init?: string; which: 'ema' | 'model';
  logEvery: number; checkpointEvery: number; keep: number; sampleEvery: number; samplesPerClass: number; snapshots: number; vae?: string;
}

/** `uniform`, or `logit-normal:M:S` (t = sigmoid(N(M, S²))). */
function parseTimeDensity(v: string): TimeDensity {
  if (v === 'uniform') return { kind: 'uniform' };
  const m = /^logit-normal:(-?[\d.]+):([\d.]+)$/.exec(v);
  if (!m || !(Number(m[2]) > 0)) throw new UsageError(`--timesteps '${v}': expected uniform or logit-normal:MEAN:STD (STD > 0)`);
  return { kind: 'logit-normal', mean: Number(m[1]), std: Number(m[2]) };
}

export function registerTrain(program: Command): void {
  const cmd = program.command('train')
    .description('train a DiT on a latent cache (from `dit vae encode`) in a run folder: a recipe (a preset, flags changing it), resumable, with snapshots for the learning curve')
    .addOption(choice('--preset <name>', `the recipe (${RECIPE_NAMES.map((n) => `${n}: ${RECIPES[n].description}`).join('; ')}); flags change it`, RECIPE_NAMES, DEFAULT_RECIPE))
    .addOption(existing('--latents <file>', `the latent cache (safetensors: mean, logvar, labels) [default: ${DEFAULT_LATENTS}]`))
    .addOption(choice('--model <name>', 'a named DiT config (its width, depth, heads, patch)', DIT_MODEL_NAMES))
    .addOption(int('--hidden <n>', 'hidden size D', { min: 8, max: LIMITS.width }))
    .addOption(int('--depth <n>', 'number of DiT blocks', { min: 1, max: LIMITS.depth }))
    .addOption(int('--heads <n>', 'attention heads (must divide D)', { min: 1, max: LIMITS.heads }))
    .addOption(int('--patch <n>', 'patch size (must divide the latent side)', { min: 1, max: LIMITS.patch }))
    .addOption(num('--mlp-ratio <r>', 'MLP width / D', { above: 0, max: 64 }))
    .addOption(choice('--conditioning <design>', 'the paper\'s conditioning design', CONDITIONINGS))
    .addOption(choice('--objective <kind>', 'eps: the official Gaussian diffusion (ε and learned sigma); flow: flow matching (velocity of the linear interpolant, SiT)', ['eps', 'flow']))
    .addOption(choice('--schedule <name>', 'eps: noise schedule, DiT\'s linear or improved DDPM\'s cosine (sample it with DDIM)', ['linear', 'cosine']))
    .option('--no-learn-sigma', 'eps: predict ε only (fixed variance, MSE loss) instead of ε and the variance')
    .addOption(num('--min-snr <gamma>', 'eps: weight the ε-MSE by min(SNR, γ)/SNR (Min-SNR-γ; 5 is the paper\'s value)', { above: 0, max: 1e6 }))
    .option('--timesteps <density>', 'flow: training times, uniform or logit-normal:MEAN:STD', parseTimeDensity)
    .addOption(int('--steps <n>', 'total training steps (resuming: the new total)', { min: 1, max: LIMITS.steps }))
    .addOption(int('--batch <n>', 'batch size', { min: 1, max: LIMITS.batch }))
    .addOption(num('--lr <x>', 'peak learning rate', { above: 0 }))
    .addOption(int('--warmup <n>', 'linear learning-rate warm-up steps', { min: 0, max: LIMITS.steps }))
    .addOption(choice('--lr-schedule <kind>', 'after warm-up: constant, or cosine decay to 10%', ['constant', 'cosine']))
    .addOption(num('--weight-decay <x>', 'AdamW decoupled weight decay', { min: 0 }))
    .addOption(num('--beta2 <x>', 'AdamW β2', { min: 0, max: 1 }))
    .addOption(num('--clip-grad <norm>', 'clip the global gradient norm to this', { above: 0 }))
    .addOption(num('--ema <decay>', 'EMA decay', { min: 0, max: 1 }))
    .option('--no-ema-warmup', 'a fixed EMA decay from the start (official; poor for short runs)')
    .option('--no-align', 'switch off the recipe\'s representation alignment with a teacher')
    .addOption(int('--align-depth <n>', 'alignment: the block whose tokens are aligned with the teacher\'s features', { min: 1, max: LIMITS.depth }))
    .addOption(num('--align-weight <λ>', 'alignment: the loss is the objective\'s minus λ·mean cosine to the teacher\'s features', { above: 0, max: 1000 }))
    .addOption(int('--align-until <step>', 'alignment: switch it off after this step', { min: 1, max: LIMITS.steps }))
    .addOption(choice('--sampler <name>', 'how the run is sampled (its pictures, then dit sample and dit eval): ddpm or ddim for eps, euler, heun or ddpm for flow', SAMPLER_NAMES))
    .addOption(int('--sample-steps <n>', 'sampling steps of the run', { min: 1, max: 1000 }))
    .addOption(num('--cfg <scale>', 'guidance scale of the run\'s samples', { min: 0, max: 1000 }))
    .addOption(cfgIntervalOption('(the run\'s samples)'))
    .addOption(choice('--guide <channels>', 'guide all latent channels, or only the first three as the official sample.py', ['all', 'official']))
    .addOption(int('--seed <n>', 'seed of the model init and of every random stream', { min: 0, max: LIMITS.seed, def: RUN_DEFAULTS.seed }))
    .option('--run <dir>', 'the run folder (default out/runs/<time>)')
    .addOption(existing('--resume <dir>', 'continue the run in <dir> from its latest checkpoint (with --steps as the new total)'))
    .addOption(existing('--init <ckpt>', 'start from these weights (.safetensors or .pt; released, exported or a run\'s checkpoint)'))
    .addOption(choice('--which <weights>', 'with --init from a training checkpoint: its EMA or raw model weights', ['ema', 'model'], 'ema'))
    .addOption(int('--log-every <n>', 'log metrics every n steps', { min: 1, max: LIMITS.steps, def: RUN_DEFAULTS.logEvery }))
    .addOption(int('--checkpoint-every <n>', 'checkpoint every n steps (and at the end)', { min: 1, max: LIMITS.steps, def: RUN_DEFAULTS.checkpointEvery }))
    .addOption(int('--keep <n>', 'keep the newest n checkpoints', { min: 1, max: 1000, def: RUN_DEFAULTS.keep }))
    .addOption(int('--sample-every <n>', 'sample pictures every n steps (0: at the end only; needs --vae)', { min: 0, max: LIMITS.steps, def: RUN_DEFAULTS.pictures.every }))
    .addOption(int('--samples-per-class <n>', 'samples per class in each picture', { min: 1, max: 100, def: RUN_DEFAULTS.pictures.perClass }))
    .addOption(int('--snapshots <n>', 'EMA snapshots kept for the learning curve (dit eval --curve), evenly spaced; 0: none', { min: 0, max: 1000, def: RUN_DEFAULTS.snapshots }))
    .addOption(existing('--vae <file>', 'the VAE that decodes sample pictures'))
    .action(async (o: TrainOpts, c: Command) => { process.exitCode = await runTrain(o, c); });
  examples(cmd, [
    'dit train --preset quick --latents out/latents.safetensors --vae out/vae-small.safetensors',
    'dit train --model DiT-S/2 --steps 2000 --run out/runs/s2',
    'dit train --resume out/runs/s2 --steps 4000',
  ]);
}

const set = (c: Command, k: string) => c.getOptionValueSource(k) === 'cli';

/** The recipe changes the flags ask for (only flags given on the command line). */
function overridesOf(o: TrainOpts, c: Command): RunOverrides {
  const pick = <T extends object>(pairs: [keyof T, unknown, string][]): Partial<T> => Object.fromEntries(pairs.filter(([, v, flag]) => v !== undefined && set(c, flag)).map(([k, v]) => [k, v])) as Partial<T>;
  const named = o.model ? ditConfig(o.model) : null;
  const model: Partial<ModelRecipe> = {
    ...(named ? { hiddenSize: named.hiddenSize, depth: named.depth, numHeads: named.numHeads, patchSize: named.patchSize } : {}),
    ...pick<ModelRecipe>([['hiddenSize', o.hidden, 'hidden'], ['depth', o.depth, 'depth'], ['numHeads', o.heads, 'heads'], ['patchSize', o.patch, 'patch'], ['mlpRatio', o.mlpRatio, 'mlpRatio'], ['conditioning', o.conditioning, 'conditioning']]),
  };
  const optim = pick<OptimRecipe>([
    ['steps', o.steps, 'steps'], ['batch', o.batch, 'batch'], ['lr', o.lr, 'lr'], ['warmup', o.warmup, 'warmup'], ['lrSchedule', o.lrSchedule, 'lrSchedule'],
    ['weightDecay', o.weightDecay, 'weightDecay'], ['beta2', o.beta2, 'beta2'], ['clipGrad', o.clipGrad, 'clipGrad'], ['emaDecay', o.ema, 'ema'], ['emaWarmup', o.emaWarmup, 'emaWarmup'],
  ]);
  const base = RECIPES[o.preset].objective;
  const kind = o.objective ?? base.kind;
  const epsFlags = (['schedule', 'learnSigma', 'minSnr'] as const).filter((k) => set(c, k));
  const flowFlags = (['timesteps'] as const).filter((k) => set(c, k));
  if (kind === 'flow' && epsFlags.length) throw new UsageError(`${epsFlags.map((k) => `--${k === 'learnSigma' ? 'no-learn-sigma' : k === 'minSnr' ? 'min-snr' : k}`).join(', ')}: only for the eps objective (this run's is flow)`);
  if (kind === 'eps' && flowFlags.length) throw new UsageError('--timesteps: only for the flow objective (this run\'s is eps)');
  let objective: Partial<Objective> | undefined;
  if (kind !== base.kind) objective = kind === 'flow' ? { kind, timesteps: o.timesteps ?? { kind: 'logit-normal', mean: 0, std: 1 } } : { kind, schedule: o.schedule ?? 'linear', learnSigma: o.learnSigma, minSnrGamma: o.minSnr ?? null };
  else if (kind === 'flow') objective = o.timesteps ? { timesteps: o.timesteps } : undefined;
  else objective = pick<Extract<Objective, { kind: 'eps' }>>([['schedule', o.schedule, 'schedule'], ['learnSigma', o.learnSigma, 'learnSigma'], ['minSnrGamma', o.minSnr, 'minSnr']]);
  const sampling = pick<Sampling>([['sampler', o.sampler, 'sampler'], ['steps', o.sampleSteps, 'sampleSteps'], ['cfg', o.cfg, 'cfg'], ['cfgInterval', o.cfgInterval, 'cfgInterval'], ['guide', o.guide, 'guide']]);
  const alignFlags = pick<Alignment>([['depth', o.alignDepth, 'alignDepth'], ['weight', o.alignWeight, 'alignWeight'], ['until', o.alignUntil, 'alignUntil']]);
  if (!o.align && Object.keys(alignFlags).length) throw new UsageError('--no-align switches alignment off: give no --align-* flag with it');
  const alignment = !o.align ? null : Object.keys(alignFlags).length ? alignFlags : undefined;
  if (kind !== base.kind && !sampling.sampler) sampling.sampler = kind === 'flow' ? 'heun' : 'ddim';
  return { model, optim, objective, sampling, alignment };
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
    for (const k of ['logEvery', 'checkpointEvery', 'keep', 'snapshots'] as const) if (set(c, k)) cfg[k] = o[k];
    if (set(c, 'sampleEvery')) cfg.pictures.every = o.sampleEvery;
    if (o.steps !== undefined) cfg.recipe.optim.steps = o.steps;
    if (o.vae) cfg.vae = path.resolve(o.vae);
    resumeFrom = await readLatestCheckpoint(run);
    if (!resumeFrom) throw new UsageError(`${run.dir} has no checkpoint yet: nothing to resume (start it again without --resume: --run ${run.dir})`);
    data = new LatentSet(await readSafetensors(cfg.data.latents));
    checkLatentsFit(data, cfg.model);
  } else {
    const latents = o.latents ?? DEFAULT_LATENTS;
    if (!existsSync(latents)) throw new UsageError(`${latents}: no such file (the default latent cache; make it with dit vae encode, or give --latents FILE)`);
    data = new LatentSet(await readSafetensors(latents));
    cfg = usage(() => planRun(o.preset, dataInfo(data, path.resolve(latents)), overridesOf(o, c), {
      seed: o.seed, vae: o.vae ? path.resolve(o.vae) : null, init: o.init ? path.resolve(o.init) : null, logEvery: o.logEvery, checkpointEvery: o.checkpointEvery,
      keep: o.keep, pictures: { every: o.sampleEvery, perClass: o.samplesPerClass }, snapshots: o.snapshots,
    }));
    if (cfg.overrides.length) log(`the ${o.preset} recipe with ${cfg.overrides.map((k) => `${k} ${JSON.stringify(k.split('.').reduce((v: unknown, p) => (v as Record<string, unknown>)[p], cfg.recipe))}`).join(', ')} (from the flags)`);
    if (!o.vae) log('no --vae: the run writes no sample pictures');
    checkOutputs({ inputs: [latents, o.init, o.vae], outputDirs: [runDir] });
    if (o.init) init = await readWeights(o.init, { ema: o.which === 'ema' });
  }
  const vaeFile = cfg.vae ? await readVae(cfg.vae) : null;
  const g = await getDevice();
  log(`adapter: ${describeAdapter(g.adapter)}`);
  const model = new DiT(cfg.model, {}, cfg.seed);
  if (init) {
    model.loadStateDict(init.tensors, { source: init.source });
    log(`initialised from ${cfg.init}${init.metadata.weights ? ` (${init.metadata.weights} weights)` : ''}`);
  }
  const r = cfg.recipe;
  const trainer = new DiTTrainer(model, r.objective, data, { ...r.optim, seed: cfg.seed }, r.alignment);
  if (resumeFrom && run) {
    restoreCheckpoint(trainer, resumeFrom);
    await run.truncateMetrics(trainer.step);
    log(`resumed ${run.dir} at step ${trainer.step} from ${resumeFrom.file}; training to step ${r.optim.steps}`);
    if (trainer.step >= r.optim.steps) { log(`already at step ${trainer.step}: give a larger --steps to continue`); return 0; }
  } else {
    run = await Run.create(runDir, cfg);
  }
  const m = cfg.model;
  log(`DiT D ${m.hiddenSize}, depth ${m.depth}, ${m.numHeads} heads, patch ${m.patchSize} (${(m.inputSize / m.patchSize) ** 2} tokens), ${m.conditioning}, ${model.numParameters().toLocaleString('en-US')} parameters; `
    + `${r.objective.kind === 'flow' ? 'flow matching' : 'ε-prediction'}; ${data.count} latents [${data.shape.join(', ')}]; ${r.optim.steps} steps at batch ${r.optim.batch}, lr ${r.optim.lr}: `
    + `${(trainMultiplyAdds(cfg, r.optim.steps * r.optim.batch) / 1e12).toFixed(1)} × 10¹² training multiply-adds; run folder ${run.dir}`);
  const vae = vaeFile ? buildVae(vaeFile) : null;
  const t0 = performance.now(), start = trainer.step;
  const progress = new Progress('training', r.optim.steps, start);
  try {
    await trainRun(run, trainer, vae, {
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
  process.stdout.write(`trained steps ${start + 1}–${trainer.step} in ${secs.toFixed(0)} s (${((trainer.step - start) / secs).toFixed(2)} steps/s); run folder ${run.dir}: metrics.jsonl, loss.png, checkpoints/ (latest: ${path.basename((await run.latest()) ?? '')}), snapshots/ (dit eval --curve ${run.dir})${vae ? `, samples-${trainer.step}.png` : ''}\n`);
  trainer.dispose();
  model.dispose();
  return 0;
}
