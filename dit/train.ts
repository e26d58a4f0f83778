// DiT training as train.py: latents are posterior samples of the cached VAE moments times the scale factor,
// AdamW, an EMA of every weight, label dropout for guidance, and the recipe's objective: the official
// Gaussian diffusion (t ~ U{0..T−1}, loss = (MSE + VLB).mean()) or flow matching (diffusion/flow.ts).
// Everything a run needs to continue exactly — weights, EMA, AdamW's moments and step, the position of every
// random stream — goes into one checkpoint, so `resume` reproduces an uninterrupted run bit for bit.
import { Tensor, scope, noGrad, keep, memory, check } from '../engine/tensor.js';
import { gpu } from '../engine/device.js';
import { backward } from '../engine/autograd.js';
import { metadataJson, refuseNonFinite, type Safetensors, type StWriteTensor } from '../engine/safetensors.js';
import { CheckpointError, NonFiniteError } from '../engine/errors.js';
import { AdamW, EMA, learningRate, type LrSchedule } from '../nn/optim.js';
import { map, add, scale } from '../kernels/elementwise.js';
import { mean } from '../kernels/reduce.js';
import { globalNorm } from '../kernels/optim.js';
import { Generator, deriveSeed } from '../kernels/random.js';
import { trainingLoss } from '../diffusion/train.js';
import { processFor, learnsSigma, type Objective } from '../diffusion/objective.js';
import type { Process } from '../diffusion/sample.js';
import type { OptimRecipe } from './recipes.js';
import { AlignProjector, alignmentCosine, type Alignment } from './align.js';
import { DiT } from './model.js';
import { configToJson } from './checkpoint.js';
import { f16ToF32 } from '../engine/half.js';
import type { DiTConfig } from './config.js';

/**
 * A latent cache (from `dit vae encode`): the posterior moments `mean`, `logvar` [N, C, h, w] and `labels`
 * [N], metadata `scale_factor` and `classes` (JSON). Kept on the CPU (any size); each batch is gathered
 * there and uploaded, and the posterior sample is drawn on the GPU.
 */
export class LatentSet {
  readonly count: number;
  readonly shape: [number, number, number];
  readonly labels: Int32Array;
  /** The largest label (a loop: spreading a large cache's labels into Math.max overflows the stack). */
  readonly maxLabel: number;
  readonly scale: number;
  readonly classes: string[];
  /** The dataset the latents encode ('synthetic', 'fashion-mnist', …), when the cache records it. */
  readonly dataset: string | null;
  readonly per: number;
  /** The file (or bytes) it came from. */
  readonly source: string;
  /** The alignment teacher's features of each latent's image [N, tokens, F] (float16 bits), when the cache has them. */
  readonly teacher: { data: Uint16Array; tokens: number; dim: number } | null;
  private readonly mean: Float32Array;
  private readonly std: Float32Array;

  /**
   * Validates the whole cache, naming the file and the first bad element: at least one latent, float
   * moments [N, C, h, w] with finite values, N integer labels in [0, classes) (the metadata's classes when
   * it lists them), a positive scale factor.
   */
  constructor(st: Safetensors) {
    const src = this.source = st.source;
    const fail = (m: string): never => { throw new CheckpointError(`${src}: ${m}`, { file: src, op: 'LatentSet' }); };
    for (const k of ['mean', 'logvar', 'labels']) if (!st.has(k)) fail(`no '${k}' tensor (a latent cache holds mean, logvar and labels; see dit vae encode)`);
    const s = st.shape('mean');
    if (s.length !== 4 || st.shape('logvar').join() !== s.join() || st.shape('labels').join() !== String(s[0])) fail(`mean ${JSON.stringify(s)}, logvar ${JSON.stringify(st.shape('logvar'))} and labels ${JSON.stringify(st.shape('labels'))} do not describe N latents [N, C, h, w]`);
    if (s[0] === 0) fail('holds no latents');
    if (s.slice(1).some((d) => d === 0)) fail(`latents of shape ${JSON.stringify(s.slice(1))} hold no values`);
    this.count = s[0];
    this.shape = [s[1], s[2], s[3]];
    this.per = s[1] * s[2] * s[3];
    this.classes = metadataJson<string[]>(st.metadata, 'classes', src) ?? [];
    if (!Array.isArray(this.classes) || !this.classes.every((c) => typeof c === 'string')) fail(`metadata 'classes' is not a list of names: ${st.metadata.classes}`);
    const labels = st.ints('labels');
    const K = this.classes.length || Infinity;
    const bad = labels.findIndex((l) => !Number.isInteger(l) || l < 0 || l >= K);
    if (bad >= 0) fail(`label ${labels[bad]} of latent ${bad} is not an integer class in [0, ${K === Infinity ? 'the class count' : K})`);
    this.labels = Int32Array.from(labels);
    this.maxLabel = this.labels.reduce((a, b) => Math.max(a, b), -1);
    this.mean = st.finiteF32('mean');
    this.std = Float32Array.from(st.finiteF32('logvar'), (v) => Math.exp(0.5 * Math.max(-30, Math.min(20, v))));
    this.scale = Number(st.metadata.scale_factor ?? 1);
    this.dataset = st.metadata.dataset ?? null;
    if (!(Number.isFinite(this.scale) && this.scale > 0)) fail(`scale_factor '${st.metadata.scale_factor}' is not a positive number`);
    this.teacher = null;
    if (st.has('teacher')) {
      const ts = st.shape('teacher');
      const dtype = st.entry('teacher').dtype;
      if (ts.length !== 3 || ts[0] !== this.count || dtype !== 'F16') fail(`'teacher' ${dtype} ${JSON.stringify(ts)} should be F16 [${this.count}, tokens, features]: one feature vector per token of each latent`);
      const data = st.view('teacher') as Uint16Array;
      const bad = data.findIndex((b) => (b & 0x7c00) === 0x7c00);
      if (bad >= 0) fail(`'teacher' holds a non-finite value at element ${bad}`);
      this.teacher = { data, tokens: ts[1], dim: ts[2] };
    }
  }

  get numClasses(): number { return this.classes.length || this.maxLabel + 1; }

  /**
   * The teacher's features of the samples `idx` as one row per token of a model with patch `patch`: [B·tokens, F]
   * (the features are per latent pixel; with patch p each token's is the mean over its p×p pixels).
   */
  teacherBatch(idx: number[], patch = 1): Tensor {
    const t = this.teacher;
    check(t, 'LatentSet', `${this.source} holds no teacher features (encode the latents with an alignment teacher: dit vae encode --teacher)`);
    const side = Math.round(Math.sqrt(t.tokens)), g = side / patch, F = t.dim, per = t.tokens * F;
    const out = new Float32Array(idx.length * g * g * F);
    idx.forEach((i, b) => {
      const f = f16ToF32(t.data.subarray(i * per, (i + 1) * per));
      for (let r = 0; r < side; r++) for (let c = 0; c < side; c++) {
        const token = b * g * g + Math.floor(r / patch) * g + Math.floor(c / patch);
        for (let k = 0; k < F; k++) out[token * F + k] += f[(r * side + c) * F + k] / (patch * patch);
      }
    });
    return Tensor.from(out, [idx.length * g * g, F]);
  }

  /** scale·(mean + std·ε) for the samples `idx`, ε from `gen`: [B, C, h, w]. */
  batch(idx: number[], gen: Generator): Tensor {
    const B = idx.length, per = this.per;
    const m = new Float32Array(B * per), s = new Float32Array(B * per);
    idx.forEach((i, b) => { m.set(this.mean.subarray(i * per, (i + 1) * per), b * per); s.set(this.std.subarray(i * per, (i + 1) * per), b * per); });
    const shape = [B, ...this.shape];
    return map('(m + s * e) * p', { m: Tensor.from(m, shape), s: Tensor.from(s, shape), e: gen.randn(shape) }, { label: 'latentSample', p: this.scale });
  }
}

/** Refuses latents a model cannot train on (their shape is not its input, or they have labels past its classes), naming the cache. */
export function checkLatentsFit(data: LatentSet, c: DiTConfig): void {
  const input = [c.inChannels, c.inputSize, c.inputSize];
  if (data.shape.join() !== input.join()) throw new CheckpointError(`${data.source}: latents [${data.shape.join(', ')}] do not fit the model's input [${input.join(', ')}]`, { file: data.source });
  if (data.maxLabel >= c.numClasses) throw new CheckpointError(`${data.source}: the latents have labels up to ${data.maxLabel}, the model only ${c.numClasses} classes`, { file: data.source });
}

/** A run's optimisation (its recipe's) and the seed of its model and random streams. */
export interface DiTTrainConfig extends OptimRecipe {
  seed: number;
}

/** Independent random streams of a run, each a Philox key derived from the seed and the stream's role. */
const STREAMS = ['noise', 'timesteps', 'order', 'labelDrop'] as const;
type Stream = typeof STREAMS[number];
export const streamSeed = (seed: number, stream: Stream): number => deriveSeed(seed, stream);

export interface StepMetrics {
  step: number; loss: number; mse: number; vb: number | null;
  /** The mean cosine of the aligned tokens with the teacher's features (null: no alignment at this step). */
  alignment: number | null;
  lr: number; gradNorm: number;
  stepsPerSec: number; imagesPerSec: number; liveMiB: number;
}

/** A non-finite loss or gradient norm: the run stops at the step it names. */
export class DivergenceError extends NonFiniteError {
  override name = 'DivergenceError';
  constructor(readonly step: number) {
    super(`training diverged: the loss or gradient norm became non-finite at step ${step}`);
  }
}

/**
 * One DiT training run's state and its step. `step` counts finished steps; `checkpoint()` / `restore()`
 * round-trip everything the next step depends on.
 */
export class DiTTrainer {
  step = 0;
  readonly opt: AdamW;
  readonly ema: EMA;
  readonly gens: Record<Stream, Generator>;
  /** 0, or the first step whose loss or gradient norm was non-finite (on the GPU: read only at sync points). */
  private readonly badStep: Tensor;
  private readonly schedule: LrSchedule;
  private last: { loss: Tensor; mse: Tensor; vb: Tensor | null; alignment: Tensor | null; gradNorm: Tensor | null } | null = null;
  /** Seconds spent training so far (what the checkpoints and learning curves report as its time). */
  trainSeconds = 0;
  private lastTime = performance.now();
  private lastStep = 0;

  /** The objective's process over all training steps. */
  readonly process: Process;
  /** Representation alignment's projector (trained with the model, never sampled), when the run aligns. */
  readonly projector: AlignProjector | null;

  constructor(readonly model: DiT, readonly objective: Objective, readonly data: LatentSet, readonly config: DiTTrainConfig, readonly alignment: Alignment | null = null) {
    const c = config;
    check(learnsSigma(objective) === model.config.learnSigma, 'DiTTrainer', `the ${objective.kind} objective ${learnsSigma(objective) ? 'needs' : 'has no'} a learned sigma, the model ${model.config.learnSigma ? 'has one' : 'has none'}`);
    this.process = processFor(objective);
    check(Number.isInteger(c.batch) && c.batch >= 1, 'DiTTrainer', `batch must be a positive integer, got ${c.batch}`);
    check(c.lr > 0 && Number.isFinite(c.lr), 'DiTTrainer', `lr must be positive, got ${c.lr}`);
    checkLatentsFit(data, model.config);
    this.projector = null;
    if (alignment) {
      const t = data.teacher;
      check(t, 'DiTTrainer', `${data.source} holds no teacher features, and the recipe aligns with a teacher (encode the latents with one: dit vae encode --teacher)`);
      check(t.tokens === model.config.inputSize ** 2, 'DiTTrainer', `${data.source}: the teacher's features have ${t.tokens} vectors per image, one per latent pixel would be ${model.config.inputSize ** 2}`);
      check(Number.isInteger(alignment.depth) && alignment.depth >= 1 && alignment.depth <= model.config.depth, 'DiTTrainer', `alignment depth ${alignment.depth} is not a block of the ${model.config.depth}`);
      this.projector = new AlignProjector(model.config.hiddenSize, t.dim, c.seed);
    }
    this.opt = new AdamW([...model.parameters(), ...(this.projector?.parameters() ?? [])], { lr: c.lr, betas: [0.9, c.beta2], weightDecay: c.weightDecay, clipGradNorm: c.clipGrad ?? undefined });
    // EMA over every named tensor (pos_embed too), initialised to the weights (update_ema(decay=0)).
    this.ema = new EMA(model.namedTensors().map(([, t]) => t), c.emaDecay);
    this.gens = Object.fromEntries(STREAMS.map((s) => [s, new Generator(streamSeed(c.seed, s))])) as Record<Stream, Generator>;
    model.labelDropGenerator = this.gens.labelDrop;
    this.badStep = keep(Tensor.from(new Float32Array(1), [1]));
    this.schedule = { lr: c.lr, warmup: c.warmup, decay: c.lrSchedule, totalSteps: c.steps, minRatio: c.minLrRatio };
  }

  get lr(): number { return learningRate(this.schedule, this.step + 1); }

  /**
   * Runs one step. With `measure`, keeps the batch's loss, MSE, VLB and gradient norm on the GPU for
   * `metrics()` (reading them is the only sync; other steps record work and return).
   */
  trainStep(measure = false): void {
    const c = this.config, step = this.step + 1;
    this.opt.lr = learningRate(this.schedule, step);
    const idx = Array.from(this.gens.order.randHost(c.batch), (u) => Math.min(this.data.count - 1, Math.floor(u * this.data.count)));
    const y = idx.map((i) => this.data.labels[i]);
    this.model.train();
    this.dropLast();
    const a = this.alignment && (this.alignment.until === null || step <= this.alignment.until) ? this.alignment : null;
    const out = scope(() => {
      const x0 = this.data.batch(idx, this.gens.noise);
      const o = this.objective;
      // With alignment, the tokens after block `depth` are kept from the forward for the projector.
      let tokens: Tensor | null = null;
      const model = a ? { forward: (x: Tensor, t: ArrayLike<number>, yy: ArrayLike<number>) => this.model.forward(x, t, yy, { onBlock: (i, h) => { if (i === a.depth - 1) tokens = h; } }), forwardWithCfg: this.model.forwardWithCfg.bind(this.model) } : this.model;
      const l = trainingLoss(model, this.process, { x0, y }, this.gens.noise, this.gens.timesteps, { minSnrGamma: o.kind === 'eps' ? o.minSnrGamma ?? undefined : undefined });
      const cos = a ? alignmentCosine(this.projector!, tokens!, this.data.teacherBatch(idx, this.model.config.patchSize)) : null;
      const total = cos ? add(l.lossMean, scale(cos, -a!.weight)) : l.lossMean;
      backward(total);
      // The gradient norm: from the clipping when it is on, else computed on logged steps only.
      const gradNorm = c.clipGrad === null ? (measure ? globalNorm(this.opt.params.filter((p) => p.grad).map((p) => p.grad!)) : null) : null;
      this.opt.step();
      this.opt.zeroGrad();
      const norm = gradNorm ?? this.opt.lastGradNorm;
      // First non-finite step: exponent bits all ones (inf or NaN), tested on the bits so no fast-math
      // assumption can fold it away.
      const bad = (v: Tensor) => map('select(o, p, o == 0.0 && (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u)', { x: v }, { label: 'divergence', p: step, out: this.badStep });
      bad(total);
      if (norm) bad(norm);
      return measure ? { loss: l.lossMean, mse: mean(l.mse), vb: l.vb ? mean(l.vb) : null, alignment: cos, gradNorm: gradNorm ?? (norm ? map('x', { x: norm }) : null) } : null;
    });
    if (out) for (const t of Object.values(out)) t?.keep();
    this.last = out;
    this.ema.update(c.emaWarmup ? Math.min(c.emaDecay, (1 + step) / (10 + step)) : c.emaDecay);
    this.step = step;
  }

  private dropLast(): void {
    if (!this.last) return;
    for (const t of Object.values(this.last)) t?.dispose();
    this.last = null;
  }

  /** Throws DivergenceError if any step so far had a non-finite loss or gradient norm (a GPU sync). */
  async checkFinite(): Promise<void> {
    const s = await this.badStep.item();
    if (s !== 0) throw new DivergenceError(s);
  }

  /** The metrics of the last step run with `measure` (reads them back), and speed since the last call. */
  async metrics(): Promise<StepMetrics> {
    check(this.last, 'DiTTrainer.metrics', 'no measured step (call trainStep(true) first)');
    const l = this.last;
    const loss = await l.loss.item(), mse = await l.mse.item(), vb = l.vb ? await l.vb.item() : null, gradNorm = l.gradNorm ? await l.gradNorm.item() : NaN;
    const alignment = l.alignment ? await l.alignment.item() : null;
    const now = performance.now(), dt = (now - this.lastTime) / 1000, ds = this.step - this.lastStep;
    this.trainSeconds += dt;
    this.lastTime = now;
    this.lastStep = this.step;
    return { step: this.step, loss, mse, vb, alignment, lr: this.opt.lr, gradNorm, stepsPerSec: ds / dt, imagesPerSec: (ds * this.config.batch) / dt, liveMiB: memory().liveBytes / 2 ** 20 };
  }

  /** Restarts the clock after work that is not training (saving, pictures): it counts neither in the speed nor in `trainSeconds`. */
  resetClock(): void { this.lastTime = performance.now(); this.lastStep = this.step; }

  /** Everything the next step depends on, as safetensors tensors and metadata; a NonFiniteError if any value is NaN or ±inf. */
  async checkpoint(extraMeta: Record<string, string> = {}): Promise<{ tensors: Map<string, StWriteTensor>; metadata: Record<string, string> }> {
    const tensors = new Map<string, StWriteTensor>();
    const named = this.model.namedTensors();
    const read = async (t: Tensor) => ({ shape: [...t.shape], data: (await t.data()) as Float32Array });
    for (let i = 0; i < named.length; i++) {
      const [n, t] = named[i];
      tensors.set(n, await read(t));
      tensors.set(`ema.${n}`, await read(this.ema.shadow[i]));
      const mom = this.opt.moments(t);
      if (mom) { tensors.set(`opt.m.${n}`, await read(mom.m)); tensors.set(`opt.v.${n}`, await read(mom.v)); }
    }
    for (const [n, t] of this.projector?.namedTensors() ?? []) {
      tensors.set(`align.${n}`, await read(t));
      const mom = this.opt.moments(t);
      if (mom) { tensors.set(`opt.m.align.${n}`, await read(mom.m)); tensors.set(`opt.v.align.${n}`, await read(mom.v)); }
    }
    refuseNonFinite(tensors, `the DiT checkpoint of step ${this.step}`);
    const rng = Object.fromEntries(STREAMS.map((s) => [s, { seed: this.gens[s].seed, offset: this.gens[s].offset }]));
    return {
      tensors,
      metadata: {
        format: 'dit-webgpu-train', weights: 'model+ema', step: String(this.step), opt_step: String(this.opt.stepCount),
        rng: JSON.stringify(rng), config: configToJson(this.model.config), train: JSON.stringify(this.config), ...extraMeta,
      },
    };
  }

  /** The EMA weights under the model's names (a snapshot for the learning curve; what `dit export` keeps as `ema`). */
  async emaTensors(): Promise<Map<string, StWriteTensor>> {
    const out = new Map<string, StWriteTensor>();
    const named = this.model.namedTensors();
    for (let i = 0; i < named.length; i++) out.set(named[i][0], { shape: [...named[i][1].shape], data: (await this.ema.shadow[i].data()) as Float32Array });
    refuseNonFinite(out, `the DiT's EMA weights at step ${this.step}`);
    return out;
  }

  /** Restores a `checkpoint()` (the model must already hold its weights' shapes). */
  restore(st: { tensors: Map<string, Float32Array>; metadata: Record<string, string>; source?: string }): void {
    const named = this.model.namedTensors();
    const get = (k: string) => {
      const v = st.tensors.get(k);
      check(v, 'resume', `the checkpoint has no '${k}'`);
      return v;
    };
    const upload = (t: Tensor, data: Float32Array, k: string) => {
      check(data.length === t.size, 'resume', `'${k}' has ${data.length} values, the model ${t.size}`);
      gpu().upload(t.buffer, data);
    };
    const moments = (t: Tensor, n: string) => {
      const m = st.tensors.get(`opt.m.${n}`), v = st.tensors.get(`opt.v.${n}`);
      if (m && v) { const s = this.opt.ensureState(t); upload(s.m, m, `opt.m.${n}`); upload(s.v, v, `opt.v.${n}`); }
    };
    named.forEach(([n, t], i) => {
      upload(t, get(n), n);
      upload(this.ema.shadow[i], get(`ema.${n}`), `ema.${n}`);
      if (t.requiresGrad) moments(t, n);
    });
    for (const [n, t] of this.projector?.namedTensors() ?? []) {
      upload(t, get(`align.${n}`), `align.${n}`);
      moments(t, `align.${n}`);
    }
    this.step = Number(st.metadata.step);
    this.opt.stepCount = Number(st.metadata.opt_step);
    this.trainSeconds = Number(st.metadata.train_seconds ?? 0);
    const rng = metadataJson<Record<Stream, { seed: number; offset: number }>>(st.metadata, 'rng', st.source ?? 'the checkpoint') ?? {} as Record<Stream, { seed: number; offset: number }>;
    for (const s of STREAMS) {
      check(rng[s] && rng[s].seed === this.gens[s].seed, 'resume', `the checkpoint's ${s} stream has seed ${rng[s]?.seed}, this run ${this.gens[s].seed} (resume with the run's own --seed)`);
      this.gens[s].offset = rng[s].offset;
    }
    this.lastStep = this.step;
  }

  /** Copies the EMA weights into the model, or into `into` (a model of the same config, for sampling while training goes on). */
  useEma(into: DiT = this.model): void {
    noGrad(() => into.namedTensors().forEach(([, t], i) => map('x', { x: this.ema.shadow[i] }, { out: t })));
  }

  dispose(): void {
    this.dropLast();
    this.opt.dispose();
    this.ema.dispose();
    this.badStep.dispose();
    this.projector?.dispose();
  }
}
