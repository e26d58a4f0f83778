// `dit verify`, `dit convert`, `dit flops`, `dit export`: parity with the official code, checkpoint formats,
// the paper's Table 4.
import { Command } from 'commander';
import { getDevice, describeAdapter } from '../engine/device.js';
import { verifyReference, type VerifyReport } from '../verify/index.js';
import { convertCheckpoint, exportTorch } from '../dit/checkpoint.js';
import { DIT_MODEL_NAMES, ditConfig, ditGflops, ditParams, type DiTConfig, type Conditioning } from '../dit/config.js';
import { resolveCheckpoint } from '../runs/run.js';
import { int, choice, existing, examples, log, usage, checkOutputs, LIMITS } from './options.js';

function fmtErr(x: number): string { return Number.isFinite(x) ? x.toExponential(2) : String(x); }

export function registerTools(program: Command): void {
  const verify = program.command('verify')
    .description('compare this port with a dump of the official PyTorch code (DiT model cases, sampling loops, training steps, VAE dumps); exit 1 over tolerance')
    .requiredOption('--reference <file>', 'the reference dump (.safetensors)')
    .addOption(existing('--weights <file>', 'weights to check (default: those inside the dump, or its weights_from sibling)'))
    .option('--json', 'print the report as JSON')
    .action(async (o: { reference: string; weights?: string; json?: boolean }) => { process.exitCode = await runVerify(o); });
  examples(verify, ['dit verify --reference ../shared/reference/dit_tiny_p2.safetensors']);

  const convert = program.command('convert')
    .description('a torch checkpoint (.pt: released weights or a training checkpoint {model, ema, opt, args}) → safetensors with the official names')
    .argument('<in.pt>', 'the torch checkpoint')
    .argument('<out.safetensors>', 'where to write')
    .addOption(choice('--which <weights>', 'of a training checkpoint: the EMA or the raw model weights', ['ema', 'model'], 'ema'))
    .addOption(int('--heads <n>', 'attention heads (not in the shapes: needed unless the width is DiT-S, B, L or XL\'s)', { min: 1, max: LIMITS.heads }))
    .action(async (input: string, output: string, o: { which: 'ema' | 'model'; heads?: number }) => {
      checkOutputs({ inputs: [input], outputs: [output] });
      const r = await convertCheckpoint(input, output, { ema: o.which === 'ema', heads: o.heads });
      process.stdout.write(`wrote ${output}: ${r.tensors} tensors, inferred config ${JSON.stringify(r.config)}\n`);
    });
  examples(convert, ['dit convert ../shared/reference/dit_tiny_p2.pt out/dit_tiny_p2.safetensors --heads 4']);

  const flops = program.command('flops')
    .description('forward Gflops (multiply-adds, one image) and parameters of the DiT configs: the paper\'s Table 4')
    .addOption(choice('--model <name>', 'one config (default: all twelve)', DIT_MODEL_NAMES))
    .addOption(choice('--image-size <px>', 'image size (latent = size / 8)', ['256', '512'], '256'))
    .addOption(choice('--conditioning <design>', 'conditioning design', ['adaLN-Zero', 'adaLN', 'cross-attention', 'in-context'], 'adaLN-Zero'))
    .addOption(int('--hidden <n>', 'a custom config: hidden size', { min: 4, max: LIMITS.width }))
    .addOption(int('--depth <n>', 'a custom config: depth', { min: 1, max: LIMITS.depth }))
    .addOption(int('--heads <n>', 'a custom config: heads', { min: 1, max: LIMITS.heads }))
    .addOption(int('--patch <n>', 'a custom config: patch size', { min: 1, max: LIMITS.patch }))
    .option('--json', 'print JSON rows')
    .action((o: { model?: string; imageSize: string; conditioning: Conditioning; hidden?: number; depth?: number; heads?: number; patch?: number; json?: boolean }) => runFlops(o));
  examples(flops, ['dit flops', 'dit flops --model DiT-XL/2 --image-size 512 --json']);

  const exp = program.command('export')
    .description('a run or checkpoint → a torch .pt in the official training layout {model, ema, opt, args} that torch.load opens')
    .argument('<run-or-checkpoint>', 'a run folder (its latest checkpoint) or a checkpoint file')
    .argument('<out.pt>', 'where to write')
    .action(async (src: string, out: string) => {
      const file = await resolveCheckpoint(src);
      checkOutputs({ inputs: [file], outputs: [out] });
      const r = await exportTorch(file, out);
      process.stdout.write(`wrote ${out}: model and ema (${r.tensors} tensors each)${r.opt ? ', opt (AdamW state, torch layout)' : ''}, args ${JSON.stringify(r.args)}\n`);
    });
  examples(exp, ['dit export out/runs/s2 out/dit-s2.pt']);
}

async function runVerify(o: { reference: string; weights?: string; json?: boolean }): Promise<number> {
  const g = await getDevice();
  if (!o.json) log(`adapter: ${describeAdapter(g.adapter)}`);
  const rep: VerifyReport = await verifyReference(o.reference, o.weights, o.json ? undefined : (m) => log(`  … ${m}`));
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ ...rep, adapter: g.adapter.description }, null, 1)}\n`);
  } else {
    const w = Math.max(...rep.rows.map((r) => r.key.length), 10);
    process.stdout.write(`${'key'.padEnd(w)}  ${'elements'.padStart(8)}  ${'error'.padStart(9)}  ${'tolerance'.padStart(9)}  metric  result\n`);
    for (const r of rep.rows) process.stdout.write(`${r.key.padEnd(w)}  ${String(r.elements).padStart(8)}  ${fmtErr(r.error).padStart(9)}  ${fmtErr(r.tolerance).padStart(9)}  ${r.metric.padEnd(6)}  ${r.pass ? 'ok' : 'FAIL'}${r.note ? `  (${r.note})` : ''}\n`);
    for (const n of rep.notes) process.stdout.write(`note: ${n}\n`);
    const worst = rep.rows.reduce((m, r) => (r.metric === 'rel' ? Math.max(m, r.error) : m), 0);
    const failed = rep.rows.filter((r) => !r.pass).length;
    process.stdout.write(`${rep.kind}: ${rep.rows.length} checks, ${failed} failed, worst rel-to-max error ${fmtErr(worst)} — ${rep.pass ? 'PASS' : 'FAIL'}\n`);
  }
  return rep.pass ? 0 : 1;
}

function runFlops(o: { model?: string; imageSize: string; conditioning: Conditioning; hidden?: number; depth?: number; heads?: number; patch?: number; json?: boolean }): void {
  const imageSize = Number(o.imageSize);
  const custom: Partial<DiTConfig> = { inputSize: imageSize / 8, conditioning: o.conditioning };
  if (o.hidden !== undefined) custom.hiddenSize = o.hidden;
  if (o.depth !== undefined) custom.depth = o.depth;
  if (o.heads !== undefined) custom.numHeads = o.heads;
  if (o.patch !== undefined) custom.patchSize = o.patch;
  const isCustom = o.hidden !== undefined || o.depth !== undefined || o.heads !== undefined || o.patch !== undefined;
  const names = o.model ? [o.model] : isCustom ? ['custom'] : DIT_MODEL_NAMES;
  const rows = names.map((name) => {
    const c = usage(() => (name === 'custom' ? ditConfig(undefined, custom) : ditConfig(name, custom)));
    return { model: name, imageSize, conditioning: c.conditioning, tokens: (c.inputSize / c.patchSize) ** 2, gflops: ditGflops(c), params: ditParams(c), paramsWithPosEmbed: ditParams(c, true) };
  });
  if (o.json) { process.stdout.write(`${JSON.stringify(rows, null, 1)}\n`); return; }
  process.stdout.write(`DiT forward Gflops (multiply-adds, one image) and parameters, ${imageSize}×${imageSize} images (latent ${imageSize / 8}), ${o.conditioning}\n`);
  process.stdout.write(`${'model'.padEnd(10)} ${'tokens'.padStart(6)} ${'Gflops'.padStart(10)} ${'params'.padStart(14)} ${'(M)'.padStart(7)}\n`);
  for (const r of rows) process.stdout.write(`${r.model.padEnd(10)} ${String(r.tokens).padStart(6)} ${r.gflops.toFixed(2).padStart(10)} ${r.params.toLocaleString('en-US').padStart(14)} ${(r.params / 1e6).toFixed(0).padStart(7)}\n`);
  process.stdout.write('Parameters exclude the fixed pos_embed, as the paper counts them.\n');
}
