#!/usr/bin/env node
// The `dit` command: demo, verify, convert, flops, sample (and the VAE/training commands as they land).
import { getDevice, describeAdapter, closeDevice } from '../engine/device.js';
import { verifyReference, type VerifyReport } from '../dit/verify.js';
import { convertCheckpoint } from '../dit/checkpoint.js';
import { DIT_MODEL_NAMES, ditConfig, ditGflops, ditParams, type DiTConfig, type Conditioning } from '../dit/config.js';
import { parseArgs, type Args } from './args.js';
import { runDemo } from './demo.js';
import { runSample } from './sample.js';
import { runVae, runData } from './vae.js';
import { runTrain } from './train.js';

const HELP = `dit — DiT on WebGPU

  dit demo                                   adapter, parity summary, a short training run and samples
  dit verify --weights W --reference R [--json]
                                             compare this port with a dump of the official PyTorch code
                                             (DiT model cases, sampling loops, training steps, VAE dumps)
  dit convert IN.pt OUT.safetensors [--model] [--heads N]
                                             torch checkpoint → safetensors (EMA weights of a training
                                             checkpoint unless --model; heads are not in the shapes: DiT's
                                             S/B/L/XL widths are known, give --heads for others)
  dit flops [--json] [--image-size 256|512] [--model DiT-XL/2 …] [--conditioning adaLN|cross-attention|in-context]
            [--hidden N --depth N --heads N --patch N]   Gflops and parameters (the paper's Table 4)
  dit sample --weights W [--vae VAE] [--labels 1,2,3] [--steps 250] [--cfg 4] [--sampler ddpm|ddim] [--seed 0] [--out samples.png]
  dit train --latents out/latents.safetensors [--vae out/vae-small.safetensors] [--steps 2000] [--batch 64]
            [--lr 3e-4] [--ema 0.999] [--ema-warmup true|false] [--hidden 192 --depth 6 --heads 6 --patch 2 | --model DiT-S/2] [--out out/dit-small.safetensors]
                                             train a DiT on cached latents, then sample a grid per class
  dit vae train [--steps 2000] [--batch 32] [--channels 32,64,64] [--data synthetic|cifar10:DIR|folder:DIR] [--out out/vae.safetensors]
  dit vae encode --weights VAE [--split train] [--out out/latents.safetensors]   latent cache + scale factor
  dit vae decode --weights VAE --latents FILE [--out out/decoded.png]
  dit vae psnr --weights VAE                 held-out reconstruction PSNR
  dit data grid [--data …] [--out out/data-grid.png]                             samples per class
  dit help
`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const args = parseArgs(rest);
  switch (cmd) {
    case 'demo': return runDemo(args);
    case 'verify': return verify(args);
    case 'convert': return convert(args);
    case 'flops': return flops(args);
    case 'sample': return runSample(args);
    case 'vae': return runVae(args);
    case 'train': return runTrain(args);
    case 'data': return runData(args);
    case undefined: case 'help': case '--help': case '-h': process.stdout.write(HELP); return 0;
    default: process.stderr.write(`dit: unknown command '${cmd}'\n\n${HELP}`); return 2;
  }
}

function fmtErr(x: number): string { return Number.isFinite(x) ? x.toExponential(2) : String(x); }

async function verify(a: Args): Promise<number> {
  const reference = a.str('reference');
  if (!reference) { process.stderr.write('dit verify: --reference FILE is required\n'); return 2; }
  const g = await getDevice();
  const json = a.bool('json');
  if (!json) process.stderr.write(`adapter: ${describeAdapter(g.adapter)}\n`);
  const rep: VerifyReport = await verifyReference(reference, a.str('weights'), json ? undefined : (m) => process.stderr.write(`  … ${m}\n`));
  if (json) {
    process.stdout.write(`${JSON.stringify({ ...rep, adapter: g.adapter.description }, null, 1)}\n`);
  } else {
    const w = Math.max(...rep.rows.map((r) => r.key.length), 10);
    process.stdout.write(`${'key'.padEnd(w)}  ${'error'.padStart(9)}  ${'tolerance'.padStart(9)}  metric  result\n`);
    for (const r of rep.rows) process.stdout.write(`${r.key.padEnd(w)}  ${fmtErr(r.error).padStart(9)}  ${fmtErr(r.tolerance).padStart(9)}  ${r.metric.padEnd(6)}  ${r.pass ? 'ok' : 'FAIL'}${r.note ? `  (${r.note})` : ''}\n`);
    for (const n of rep.notes) process.stdout.write(`note: ${n}\n`);
    const worst = rep.rows.reduce((m, r) => (r.metric === 'rel' ? Math.max(m, r.error) : m), 0);
    const failed = rep.rows.filter((r) => !r.pass).length;
    process.stdout.write(`${rep.kind}: ${rep.rows.length} checks, ${failed} failed, worst rel-to-max error ${fmtErr(worst)} — ${rep.pass ? 'PASS' : 'FAIL'}\n`);
  }
  return rep.pass ? 0 : 1;
}

async function convert(a: Args): Promise<number> {
  const [input, output] = a.positional;
  if (!input || !output) { process.stderr.write('usage: dit convert IN.pt OUT.safetensors [--model]\n'); return 2; }
  const r = await convertCheckpoint(input, output, { ema: !a.bool('model'), heads: a.num('heads') });
  process.stdout.write(`wrote ${output}: ${r.tensors} tensors, inferred config ${JSON.stringify(r.config)}\n`);
  return 0;
}

function flops(a: Args): number {
  const imageSize = a.num('image-size') ?? 256;
  const conditioning = (a.str('conditioning') ?? 'adaLN-Zero') as Conditioning;
  const custom: Partial<DiTConfig> = { inputSize: imageSize / 8, conditioning };
  for (const [flag, key] of [['hidden', 'hiddenSize'], ['depth', 'depth'], ['heads', 'numHeads'], ['patch', 'patchSize'], ['classes', 'numClasses'], ['channels', 'inChannels'], ['mlp-ratio', 'mlpRatio']] as const) {
    const v = a.num(flag);
    if (v !== undefined) (custom as Record<string, number>)[key] = v;
  }
  if (a.has('learn-sigma')) custom.learnSigma = a.bool('learn-sigma');
  const names = a.str('model') ? [a.str('model')!] : a.has('hidden') ? ['custom'] : DIT_MODEL_NAMES;
  const rows = names.map((name) => {
    const c = name === 'custom' ? ditConfig(undefined, custom) : ditConfig(name, custom);
    return { model: name, imageSize, conditioning: c.conditioning, tokens: (c.inputSize / c.patchSize) ** 2, gflops: ditGflops(c), params: ditParams(c), paramsWithPosEmbed: ditParams(c, true) };
  });
  if (a.bool('json')) { process.stdout.write(`${JSON.stringify(rows, null, 1)}\n`); return 0; }
  process.stdout.write(`DiT forward Gflops (multiply-adds, one image) and parameters, ${imageSize}×${imageSize} images (latent ${imageSize / 8}), ${conditioning}\n`);
  process.stdout.write(`${'model'.padEnd(10)} ${'tokens'.padStart(6)} ${'Gflops'.padStart(10)} ${'params'.padStart(14)} ${'(M)'.padStart(7)}\n`);
  for (const r of rows) process.stdout.write(`${r.model.padEnd(10)} ${String(r.tokens).padStart(6)} ${r.gflops.toFixed(2).padStart(10)} ${r.params.toLocaleString('en-US').padStart(14)} ${(r.params / 1e6).toFixed(0).padStart(7)}\n`);
  process.stdout.write('Parameters exclude the fixed pos_embed, as the paper counts them.\n');
  return 0;
}

// The device is destroyed before exiting: process.exit with Dawn still holding it can segfault.
main(process.argv.slice(2)).then(async (code) => {
  await closeDevice();
  process.exit(code);
}, async (e: Error) => {
  process.stderr.write(`dit: ${e.message}\n`);
  if (process.env.DIT_DEBUG) process.stderr.write(`${e.stack}\n`);
  await closeDevice().catch(() => undefined);
  process.exit(1);
});
