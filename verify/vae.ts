// VAE parity checks against diffusers dumps (the format of shared/reference/vae): encoder moments and
// posterior, sample with recorded noise, decode, reconstruction, non-square input, gradients through the
// decoder, intermediates, and the DiagonalGaussian unit case. Called by `dit verify`.
import { Tensor, scope, scopeAsync, noGrad } from '../engine/tensor.js';
import { backward } from '../engine/autograd.js';
import type { Safetensors } from '../engine/safetensors.js';
import { mul } from '../kernels/elementwise.js';
import { sum } from '../kernels/reduce.js';
import { Report, f32, dirOf } from './report.js';
import { DiagonalGaussian } from '../vae/model.js';
import { loadVae, vaeConfigFromJson } from '../vae/checkpoint.js';

const TOL = { forward: 1e-4, grad: 1e-3, probsAbs: 1e-5, toKBiasAbs: 1e-4, dist: 1e-5 };



export async function verifyVae(ref: Safetensors, file: string, weightsFile: string | undefined, r: Report, log: (m: string) => void): Promise<void> {
  const T = (k: string) => Tensor.from(ref.f32(k), ref.shape(k));
  if (ref.has('dist.params')) { await verifyDist(ref, r, T); return; }
  const weights = weightsFile ?? (ref.metadata.weights ? `${dirOf(file)}/${ref.metadata.weights}` : undefined);
  if (!weights) throw new Error(`${file}: no weights given (--weights) and none named in its metadata`);
  const config = ref.metadata.config ? vaeConfigFromJson(JSON.parse(ref.metadata.config)) : undefined;
  const vae = await loadVae(weights, config);
  vae.eval();
  try {
    if (ref.has('inputs.x')) {
      log('encoder and posterior');
      await scopeAsync(async () => {
        const vaeOut = noGrad(() => {
          vae.intermediates = new Map();
          const post = vae.encode(T('inputs.x'));
          const enc = vae.intermediates.get('encoder.conv_out')!;
          const moments = vae.intermediates.get('quant_conv')!;
          return { post, enc, moments };
        });
        const { post, enc, moments } = vaeOut;
        const checks: [string, Tensor][] = [['enc.encoder_out', enc], ['enc.moments', moments], ['enc.mean', post.mean], ['enc.logvar', post.logvar], ['enc.std', post.std], ['enc.mode', post.mode()]];
        if (ref.has('enc.noise')) checks.push(['enc.sample', post.sample(T('enc.noise'))]);
        for (const [k, v] of checks) if (ref.has(k)) r.add(k, await f32(v), ref.f32(k), TOL.forward);
        await checkIntermediates(vae.intermediates!, ref, r, 'encoder.');
        clearCaptures(vae);
      });
    }
    if (ref.has('dec.z')) {
      log('decoder');
      await scopeAsync(async () => {
        vae.intermediates = new Map();
        const out = noGrad(() => vae.decode(T('dec.z')));
        if (ref.has('dec.out')) r.add('dec.out', await f32(out), ref.f32('dec.out'), TOL.forward);
        await checkIntermediates(vae.intermediates, ref, r, 'decoder.', 'post_quant_conv');
        clearCaptures(vae);
      });
    }
    if (ref.has('recon.out')) {
      log('reconstruction');
      r.add('recon.out', await f32(scope(() => noGrad(() => vae.forward(T('inputs.x'))))), ref.f32('recon.out'), TOL.forward);
    }
    if (ref.has('rect.x')) {
      log('non-square input');
      await scopeAsync(async () => {
        const post = noGrad(() => vae.encode(T('rect.x')));
        r.add('rect.mean', await f32(post.mean), ref.f32('rect.mean'), TOL.forward);
        r.add('rect.logvar', await f32(post.logvar), ref.f32('rect.logvar'), TOL.forward);
        r.add('rect.out', await f32(noGrad(() => vae.forward(T('rect.x')))), ref.f32('rect.out'), TOL.forward);
      });
    }
    if (ref.has('grad.loss_w')) {
      log('gradients of Σ(decode(z)·loss_w)');
      const z = T('dec.z').setRequiresGrad();
      const loss = sum(mul(vae.decode(z), T('grad.loss_w')));
      r.add('grad.loss', [await loss.item()], ref.f32('grad.loss'), TOL.forward);
      backward(loss);
      r.add('grad.z', await f32(z.grad!), ref.f32('grad.z'), TOL.grad);
      for (const [n, p] of vae.namedParameters()) {
        const k = `grad.${n}`;
        if (!ref.has(k)) continue;
        const got = p.grad ? await f32(p.grad) : new Float32Array(p.size);
        // ∂/∂b_k is analytically 0 (q·b_k is constant over keys, softmax is shift-invariant): absolute check.
        if (n.endsWith('to_k.bias')) r.add(k, got, ref.f32(k), TOL.toKBiasAbs, 'abs', 'analytically zero');
        else r.add(k, got, ref.f32(k), TOL.grad);
      }
      vae.zeroGrad();
    }
  } finally {
    vae.dispose();
  }
}

function clearCaptures(vae: { intermediates: Map<string, Tensor> | null }): void {
  for (const t of vae.intermediates?.values() ?? []) t.dispose();
  vae.intermediates = null;
}

async function checkIntermediates(got: Map<string, Tensor>, ref: Safetensors, r: Report, ...prefixes: string[]): Promise<void> {
  for (const k of ref.keys().filter((k) => k.startsWith('inter.') && prefixes.some((p) => k.slice(6).startsWith(p)))) {
    const v = got.get(k.slice(6));
    if (!v) { r.notes.push(`${k}: no matching module output captured (skipped)`); continue; }
    if (k.endsWith('attention_probs')) r.add(k, await f32(v), ref.f32(k), TOL.probsAbs, 'abs');
    else r.add(k, await f32(v), ref.f32(k), TOL.forward);
  }
}

async function verifyDist(ref: Safetensors, r: Report, T: (k: string) => Tensor): Promise<void> {
  await scopeAsync(async () => {
    const d = new DiagonalGaussian(T('dist.params'));
    const o = new DiagonalGaussian(T('dist.other_params'));
    const checks: [string, Tensor][] = [
      ['dist.mean', d.mean], ['dist.logvar', d.logvar], ['dist.std', d.std], ['dist.var', d.variance], ['dist.mode', d.mode()],
      ['dist.sample', d.sample(T('dist.noise'))], ['dist.kl', d.kl()], ['dist.kl_other', d.kl(o)],
      ['dist.other.kl', o.kl()], ['dist.other.sample', o.sample(T('dist.noise'))], ['dist.other.nll', o.nll(T('dist.other.sample'))],
    ];
    for (const [k, v] of checks) if (ref.has(k)) r.add(k, await f32(v), ref.f32(k), TOL.dist);
  });
}
