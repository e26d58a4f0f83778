// Parity checks of a port against dumps of the official PyTorch code (the formats of shared/reference):
// model cases (forward, cfg, label dropout, intermediates, gradients, training losses), sampling loops
// (DDPM with recorded noise, DDIM), and AdamW training steps.
import { Tensor, scope, noGrad, keep } from '../engine/tensor.js';
import { backward } from '../engine/autograd.js';
import { AdamW } from '../nn/optim.js';
import { Safetensors, readSafetensors } from '../engine/safetensors.js';
import { mul } from '../kernels/elementwise.js';
import { sum } from '../kernels/reduce.js';
import { GaussianDiffusion } from '../diffusion/gaussian.js';
import { sampleLoop } from '../diffusion/sample.js';
import { trainingLoss } from '../diffusion/train.js';
import { Generator } from '../kernels/random.js';
import { DiT, timestepFrequencies } from '../dit/model.js';
import { readWeights, ditFromWeights, weightsFromSource, configFromMetadata, type WeightSet } from '../dit/checkpoint.js';
import { TensorSource } from '../engine/safetensors.js';
import type { DiTConfig } from '../dit/config.js';
import { Report, f32, dirOf, selected } from './report.js';

const TOL = { forward: 1e-4, grad: 1e-3, tFreqAbs: 1e-4, loss: 1e-4, lossT0: 2e-2, step: 1e-4, paramAbs: 1e-6 };




/** Weights for a reference: --weights, else the reference file itself, else its `weights_from` sibling. */
async function weightsFor(ref: Safetensors, refFile: string, weights?: string): Promise<WeightSet> {
  if (weights) return readWeights(weights);
  if (ref.has('pos_embed')) {
    const src = new TensorSource([ref], new Map(ref.keys().map((k) => [k, ref])), refFile);
    return { tensors: weightsFromSource(src), metadata: ref.metadata, source: refFile };
  }
  const from = ref.metadata.weights_from;
  if (from) return readWeights(`${dirOf(refFile)}/${from}`);
  throw new Error(`${refFile}: no weights inside and no weights_from metadata; pass --weights`);
}

function configOverride(ref: Safetensors): Partial<DiTConfig> | undefined {
  return configFromMetadata(ref.metadata) ?? undefined;
}

// ------------------------------------------------------------------------------------------ model cases
export async function verifyModel(ref: Safetensors, file: string, weightsFile: string | undefined, r: Report, log: (m: string) => void): Promise<void> {
  const w = await weightsFor(ref, file, weightsFile);
  const model = ditFromWeights(w, configOverride(ref) ?? undefined);
  model.eval();
  const T = (k: string) => Tensor.from(ref.f32(k), ref.shape(k));
  const ints = (k: string) => Array.from(ref.f32(k), Math.round);
  try {
    const t = ints('inputs.t'), y = ints('inputs.y');
    if (ref.has('out.forward')) {
      log('forward');
      const x = T('inputs.x').setRequiresGrad(ref.has('grad.x'));
      const out = model.forward(x, t, y);
      r.add('out.forward', await f32(out), ref.f32('out.forward'), TOL.forward);
      if (ref.has('loss_w')) {
        log('gradients of Σ(out·loss_w)');
        const loss = sum(mul(out, T('loss_w')));
        if (ref.has('out.loss')) r.add('out.loss', [await loss.item()], ref.f32('out.loss'), TOL.forward);
        backward(loss);
        if (ref.has('grad.x')) r.add('grad.x', await f32(x.grad!), ref.f32('grad.x'), TOL.grad);
        await checkParamGrads(model, ref, r);
      }
      scope(() => [x, out].forEach((v) => v.dispose()));
    }
    if (ref.has('cfg.x')) {
      log('classifier-free guidance');
      const cx = T('cfg.x'), ct = ints('cfg.t'), cy = ints('cfg.y');
      if (ref.has('cfg.model_out')) r.add('cfg.model_out', await f32(scope(() => noGrad(() => model.forward(cx, ct, cy)))), ref.f32('cfg.model_out'), TOL.forward);
      for (const s of Array.from(ref.f32('cfg.scales'))) {
        const key = ref.keys().find((k) => k.startsWith('cfg.out_scale') && Math.abs(parseFloat(k.slice(13)) - s) < 1e-6);
        if (key) r.add(key, await f32(scope(() => noGrad(() => model.forwardWithCfg(cx, ct, cy, s)))), ref.f32(key), TOL.forward);
      }
    }
    if (ref.has('label_drop.force_drop_ids')) {
      log('label dropout');
      const drop = ints('label_drop.force_drop_ids');
      const labels = model.yEmbedder.dropLabels(y, false, null, drop);
      r.add('label_drop.labels_out', labels, ref.f32('label_drop.labels_out'), 0, 'abs');
      r.add('label_drop.emb', await f32(scope(() => noGrad(() => model.yEmbedder.forward(labels)))), ref.f32('label_drop.emb'), TOL.forward);
    }
    // The intermediates and training losses of a model case live in its `<name>_inter.safetensors` sibling.
    const sibling = file.replace(/\.safetensors$/, '_inter.safetensors');
    const inter = ref.has('inter.x_embed') ? ref : (await import('node:fs')).existsSync(sibling) ? await readSafetensors(sibling) : null;
    if (inter) await verifyIntermediates(model, inter, r, log);
    if (inter?.has('train.x_start')) await verifyTrainingLosses(model, inter, r, log);
  } finally {
    model.dispose();
  }
}

/** grad.<param>: the gradients of Σ(out·loss_w), every parameter the dump holds. */
async function checkParamGrads(model: DiT, ref: Safetensors, r: Report): Promise<void> {
  for (const [n, p] of model.namedParameters()) {
    if (ref.has(`grad.${n}`)) r.add(`grad.${n}`, p.grad ? await f32(p.grad) : new Float32Array(p.size), ref.f32(`grad.${n}`), TOL.grad);
  }
  model.zeroGrad();
}

async function verifyIntermediates(model: DiT, inter: Safetensors, r: Report, log: (m: string) => void): Promise<void> {
  log('intermediates');
  const ints = (k: string) => Array.from(inter.f32(k), Math.round);
  const x = Tensor.from(inter.f32('inputs.x'), inter.shape('inputs.x'));
  const t = ints('inputs.t'), y = ints('inputs.y');
  if (inter.has('inter.t_freq')) r.add('inter.t_freq', timestepFrequencies(t), inter.f32('inter.t_freq'), TOL.tFreqAbs, 'abs', 'WGSL-free: computed on the CPU');
  model.intermediates.clear();
  scope(() => noGrad(() => model.forward(x, t, y, { keepIntermediates: true })));
  for (const k of inter.keys().filter((k) => k.startsWith('inter.') && k !== 'inter.t_freq')) {
    const got = model.intermediates.get(k.slice(6));
    if (!got) { r.notes.push(`${k}: no matching intermediate in this port (skipped)`); continue; }
    r.add(k, await f32(got), inter.f32(k), TOL.forward);
  }
  for (const v of model.intermediates.values()) v.dispose();
  model.intermediates.clear();
  x.dispose();
}

/** train.* (values) and train_grad.* (values and the 16-parameter gradient subset). */
async function verifyTrainingLosses(model: DiT, inter: Safetensors, r: Report, log: (m: string) => void): Promise<void> {
  log('training losses');
  const T = (k: string) => Tensor.from(inter.f32(k), inter.shape(k));
  const diffusion = new GaussianDiffusion({ learnSigma: model.config.learnSigma });
  for (const tag of ['train', 'train_grad']) {
    if (!inter.has(`${tag}.t`)) continue;
    const t = Array.from(inter.f32(`${tag}.t`), Math.round);
    const withGrad = tag === 'train_grad';
    const run = () => trainingLoss(model, diffusion, { x0: T('train.x_start'), y: Array.from(inter.f32('train.y'), Math.round), t, noise: T('train.noise') }, new Generator(0));
    const l = withGrad ? run() : noGrad(run);
    const isT0 = (i: number) => t[i] === 0;
    if (inter.has(`${tag}.x_t`)) {
      r.add(`${tag}.x_t`, await f32(diffusion.qSample(T('train.x_start'), t, T('train.noise'))), inter.f32(`${tag}.x_t`), TOL.forward);
    }
    r.add(`${tag}.mse`, await f32(l.mse), inter.f32(`${tag}.mse`), TOL.loss);
    for (const key of ['vb', 'loss'] as const) {
      const got = await f32(key === 'vb' ? l.vb! : l.loss);
      r.add(`${tag}.${key}`, got, inter.f32(`${tag}.${key}`), TOL.loss, 'rel', 't > 0 elements', (i) => !isT0(i));
      if (t.some((v) => v === 0)) r.add(`${tag}.${key}[t=0]`, got, inter.f32(`${tag}.${key}`), TOL.lossT0, 'rel', 'f32 cancellation at t = 0 (README)', isT0);
    }
    r.add(`${tag}.loss_mean`, [await l.lossMean.item()], inter.f32(`${tag}.loss_mean`), t.some((v) => v === 0) ? TOL.lossT0 : TOL.loss);
    if (withGrad) {
      backward(l.lossMean);
      for (const [n, p] of model.namedParameters()) {
        const k = `${tag}.grad.${n}`;
        if (inter.has(k)) r.add(k, p.grad ? await f32(p.grad) : new Float32Array(p.size), inter.f32(k), TOL.grad);
      }
      model.zeroGrad();
    }
  }
}

// ------------------------------------------------------------------------------------------ sampling loops
export async function verifySampleLoop(ref: Safetensors, file: string, weightsFile: string | undefined, r: Report, log: (m: string) => void): Promise<void> {
  const w = await weightsFor(ref, file, weightsFile);
  const model = ditFromWeights(w, configOverride(ref) ?? undefined);
  model.eval();
  const respacing = ref.metadata.respacing ?? String(ref.shape('ddpm.x')[0]);
  const diffusion = new GaussianDiffusion({ respacing, learnSigma: model.config.learnSigma });
  if (ref.has('timestep_map')) r.add('timestep_map', diffusion.tables.timestepMap, ref.f32('timestep_map'), 0, 'abs');
  const z = Tensor.from(ref.f32('z'), ref.shape('z'));
  const y = Array.from(ref.f32('y'), Math.round);
  const cfgScale = ref.has('cfg_scale') ? ref.f32('cfg_scale')[0] : 1;
  const per = z.size;
  const stepKey = (name: string, k: number) => ref.f32(name).subarray(k * per, (k + 1) * per);
  try {
    for (const sampler of ['ddpm', 'ddim'] as const) {
      if (!ref.has(`${sampler}.x`)) continue;
      log(`${sampler} loop (${diffusion.numTimesteps} steps, cfg ${cfgScale})`);
      const noise = sampler === 'ddpm' ? (k: number) => Tensor.from(stepKey('ddpm.noise', k), z.shape) : undefined;
      const final = await sampleLoop(model, diffusion, z, y, {
        sampler, cfgScale, eta: 0, noise,
        onStep: async ({ step, x, predXstart }) => {
          r.add(`${sampler}.x[${step}]`, await f32(x), stepKey(`${sampler}.x`, step), TOL.step);
          if (ref.has(`${sampler}.pred_xstart`)) r.add(`${sampler}.pred_xstart[${step}]`, await f32(predXstart), stepKey(`${sampler}.pred_xstart`, step), TOL.step);
        },
      });
      const got = await f32(final);
      r.add(`${sampler}.final`, got, ref.f32(`${sampler}.final`), TOL.step);
      if (ref.has(`${sampler}.final_cond_half`)) r.add(`${sampler}.final_cond_half`, got.subarray(0, per / 2), ref.f32(`${sampler}.final_cond_half`), TOL.step);
      final.dispose();
    }
  } finally {
    model.dispose();
  }
}

// ------------------------------------------------------------------------------------------ training steps
/** AdamW hyper-parameters from the dump's `optimizer` metadata (DiT's by default). */
function optimizerFrom(meta: Record<string, string>): { lr: number; betas: [number, number]; eps: number; weightDecay: number } {
  const s = meta.optimizer ?? '';
  const num = (re: RegExp, d: number) => { const m = re.exec(s); return m ? parseFloat(m[1]) : d; };
  const betas = /betas=\(([^,]+),\s*([^)]+)\)/.exec(s);
  return { lr: num(/lr=([0-9.e+-]+)/, 1e-4), betas: betas ? [parseFloat(betas[1]), parseFloat(betas[2])] : [0.9, 0.999], eps: num(/eps=([0-9.e+-]+)/, 1e-8), weightDecay: num(/weight_decay=([0-9.e+-]+)/, 0) };
}

export async function verifyTrainStep(ref: Safetensors, file: string, r: Report, log: (m: string) => void): Promise<void> {
  const w = await weightsFor(ref, file);
  const steps = new Set(ref.keys().map((k) => /^step(\d+)\./.exec(k)?.[1]).filter((x): x is string => !!x));
  const model = ditFromWeights(w, configOverride(ref) ?? undefined);
  // model.train() without random label drops (the dump sets dropout_prob to 0 after construction).
  model.train();
  model.yEmbedder.dropoutProb = 0;
  const respacing = ref.metadata.respacing ?? '';
  const diffusion = new GaussianDiffusion({ respacing, learnSigma: model.config.learnSigma });
  const T = (k: string) => keep(Tensor.from(ref.f32(k), ref.shape(k)));
  const batch = { x0: T('train.x_start'), noise: T('train.noise'), t: Array.from(ref.f32('train.t'), Math.round), y: Array.from(ref.f32('train.y'), Math.round) };
  const opt = new AdamW(model.parameters(), optimizerFrom(ref.metadata));
  const before = new Map<string, Float32Array>();
  // Smallest |grad| each entry has had so far: an AdamW step depends on every earlier gradient of the entry.
  const minGrad = new Map<string, Float32Array>();
  const maxGrad = new Map<string, Float32Array>();
  const isT0 = (i: number) => batch.t[i] === 0;
  try {
    for (let k = 0; k < steps.size; k++) {
      log(`AdamW step ${k}`);
      for (const [n, p] of model.namedParameters()) before.set(n, await f32(p));
      const l = trainingLoss(model, diffusion, batch, new Generator(0));
      r.add(`step${k}.mse`, await f32(l.mse), ref.f32(`step${k}.mse`), TOL.loss);
      if (l.vb) r.add(`step${k}.vb`, await f32(l.vb), ref.f32(`step${k}.vb`), TOL.loss, 'rel', undefined, (i) => !isT0(i));
      r.add(`step${k}.loss`, await f32(l.loss), ref.f32(`step${k}.loss`), TOL.loss, 'rel', undefined, (i) => !isT0(i));
      r.add(`step${k}.loss_mean`, [await l.lossMean.item()], ref.f32(`step${k}.loss_mean`), batch.t.some((v) => v === 0) ? TOL.lossT0 : TOL.loss);
      backward(l.lossMean);
      const grads = new Map<string, Float32Array>();
      for (const [n, p] of model.namedParameters()) {
        grads.set(n, p.grad ? await f32(p.grad) : new Float32Array(p.size));
        if (ref.has(`step${k}.grad.${n}`)) r.add(`step${k}.grad.${n}`, grads.get(n)!, ref.f32(`step${k}.grad.${n}`), TOL.grad);
      }
      opt.step();
      opt.zeroGrad();
      for (const [n, p] of model.namedParameters()) {
        const key = `step${k}.param.${n}`;
        if (!ref.has(key)) continue;
        const want = ref.f32(key);
        const g = grads.get(n)!;
        const mg = minGrad.get(n) ?? Float32Array.from(g, Math.abs);
        const xg = maxGrad.get(n) ?? Float32Array.from(g, Math.abs);
        for (let i = 0; i < g.length; i++) { mg[i] = Math.min(mg[i], Math.abs(g[i])); xg[i] = Math.max(xg[i], Math.abs(g[i])); }
        minGrad.set(n, mg);
        maxGrad.set(n, xg);
        // Entries whose |grad| fell under 1e-6 at any step so far move by about ±lr whatever the rounding of
        // their gradients (Adam normalises them): excluded, as the README says; entries with grad exactly 0 must
        // not move at all.
        const got = await f32(p);
        r.add(key, got, want, TOL.paramAbs, 'abs', '|grad| ≥ 1e-6 at every step', (i) => mg[i] >= 1e-6);
        // Entries whose gradient has been exactly 0 at every step (unused label rows) must not have moved;
        // an entry that is 0 only now still moves with Adam's momentum.
        const zeroSoFar = (i: number) => mg[i] === 0 && xg[i] === 0;
        if (selected(g.length, zeroSoFar)) r.add(`${key}[grad=0]`, got, before.get(n)!, 0, 'abs', 'unchanged where the gradient was always 0', zeroSoFar);
      }
    }
  } finally {
    opt.dispose();
    model.dispose();
    batch.x0.dispose(); batch.noise.dispose();
  }
}
