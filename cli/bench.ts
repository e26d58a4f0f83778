// `dit bench`: the paper's Table 4 (analytic Gflops, parameters) beside what this adapter measures for each
// DiT config — forward, training step, sampling cost, peak memory — with TF.js-WebGPU in the same run, the
// CPU cost of a dispatch, a table (stdout), JSON rows and a plot.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { getDevice, describeAdapter } from '../engine/device.js';
import { writeFileAtomic } from '../engine/node.js';
import { fmaCeilingGflops } from '../kernels/probe.js';
import { DIT_MODEL_NAMES, ditConfig } from '../dit/config.js';
import { benchConfig, dispatchCost, measuredRate, type BenchRow, type DispatchCost } from '../bench/ditbench.js';
import { chartConfig, renderChartsPng, type Series } from '../data/plot.js';
import { int, choice, examples, log, checkOutputs, UsageError, LIMITS } from './options.js';

interface BenchOpts { configs: string; batch: number; imageSize: string; train?: boolean; sampling?: boolean; peers?: boolean; peerReps: number; peerBudgetS: number; json?: string; markdown?: boolean; plot?: string; kernels?: string; budgetS: number; reps: number; dispatch?: boolean }

export function registerBench(program: Command): void {
  const cmd = program.command('bench')
    .description('measure every DiT config on this adapter beside the paper\'s Table 4 (Gflops, parameters): forward, training step, sampling, memory; TF.js side by side; dispatch cost; plots')
    .option('--configs <list>', 'all, or names such as S/2,B/4 (DiT- prefix optional)', 'all')
    .addOption(int('--batch <n>', 'images per batch', { min: 1, max: LIMITS.batch, def: 8 }))
    .addOption(choice('--image-size <px>', 'image size (latent = size / 8)', ['256', '512'], '256'))
    .option('--train', 'also the training step (forward + backward + AdamW) and its peak live GPU memory')
    .option('--sampling', 'also the cost of one image with 250 DDPM steps and guidance 4')
    .option('--peers', 'TF.js-WebGPU on the same adapter in the same run (its own process): DiT-S/2 forward and training step at --batch')
    .addOption(int('--peer-reps <n>', 'timed calls of the peer (its DiT-S/2 training step takes minutes on CPU drivers)', { min: 1, max: 1000, def: 3 }))
    .addOption(int('--peer-budget-s <s>', 'with --peers, the budget of DiT-S/2 (ours, so the ratio has both sides) and of each of the peer\'s forward and training step', { min: 1, max: LIMITS.seconds, def: 600 }))
    .addOption(int('--reps <n>', 'timed calls per measurement after the warm-up (median)', { min: 1, max: 1000, def: 5 }))
    .addOption(int('--budget-s <s>', 'skip a measurement whose calls (warm-up included) would take longer than this, predicted from the smaller configs measured before it (the row says so); 60 keeps --configs all --train --peers near 20 minutes on lavapipe', { min: 1, max: LIMITS.seconds, def: 60 }))
    .option('--dispatch', 'the CPU cost of a dispatch through the engine beside a raw Dawn loop, and the dispatches of a DiT-S/2 step')
    .option('--json <file>', 'write the rows (with adapter, date and versions) as JSON')
    .option('--markdown', 'print the table as Markdown')
    .option('--plot <file.png>', 'images/s against Gflops per image (log–log), and the kernel GFLOP/s against the FMA ceiling')
    .option('--kernels <file.json>', 'kernel results for the plot\'s second panel (from npm run bench:kernels -- --json)', 'bench/results/lavapipe-kernels.json')
    .action(async (o: BenchOpts) => { process.exitCode = await runBench(o); });
  examples(cmd, [
    'dit bench --configs all --train --peers --plot bench/results/dit-bench.png --json bench/results/dit-bench.json --markdown',
    'dit bench --configs S/2 --dispatch',
  ]);
}

/** 'all' or a list of names ('S/2', 'DiT-B/4') → official names; a usage error names a bad one. */
export function parseConfigs(list: string): string[] {
  if (list === 'all') return [...DIT_MODEL_NAMES].reverse();
  return list.split(',').map((s) => {
    const name = s.startsWith('DiT-') ? s : `DiT-${s}`;
    if (!DIT_MODEL_NAMES.includes(name)) throw new UsageError(`--configs: '${s}' is not a DiT config (${DIT_MODEL_NAMES.map((n) => n.slice(4)).join(', ')}, or all)`);
    return name;
  });
}

/** Runs the TF.js DiT peer in its own process, stopped after `limitS`; null fields when it fails (the reason is logged). */
function runPeer(name: string, batch: number, imageSize: number, reps: number, train: boolean, limitS: number): Promise<{ forward_ms: number | null; train_step_ms: number | null }> {
  const c = ditConfig(name, { inputSize: imageSize / 8 });
  const script = fileURLToPath(new URL('../../bench/peer_tfjs_dit.mjs', import.meta.url));
  const arg = JSON.stringify({ hidden: c.hiddenSize, depth: c.depth, heads: c.numHeads, patch: c.patchSize, inChannels: c.inChannels, inputSize: c.inputSize, classes: c.numClasses, batch });
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, arg, String(reps), train ? 'train' : 'no-train'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => { err += `\nstopped after ${limitS} s (--peer-budget-s for its forward and its training step)`; child.kill(); }, limitS * 1000);
    let out = '', err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { const s = d.toString(); err += s; for (const l of s.split('\n')) if (l.startsWith('tfjs')) log(`  ${l}`); });
    child.on('close', (code) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('PEER '));
      if (code !== 0 || !line) { log(`  TF.js peer failed (exit ${code}): ${err.split('\n').filter((l) => l && !l.startsWith('Warning')).slice(-2).join(' | ')}`); resolve({ forward_ms: null, train_step_ms: null }); return; }
      resolve(JSON.parse(line.slice(5)));
    });
  });
}

const f = (x: number | null, d = 1) => (x === null ? '—' : x.toFixed(d));

/** The peer's ms and, when ours was measured, how many times ours it takes. */
const peerCell = (peer: number | null, ours: number | null) => (peer === null ? '—' : `${peer.toFixed(0)}${ours === null ? '' : ` (${(peer / ours).toFixed(1)}×)`}`);

function table(rows: BenchRow[], markdown: boolean): string {
  const head = ['model', 'Gflops/img', 'params (M)', 'forward ms', 'GPU ms', 'img/s', 'GFLOP/s', '% ceiling', 'train ms', 'train img/s', 'peak MiB', 'sample s/img', 'TF.js fwd ms', 'TF.js train ms', 'status'];
  const cells = rows.map((r) => [
    r.model, r.gflops_per_image.toFixed(2), (r.params / 1e6).toFixed(1), f(r.forward_ms), f(r.forward_gpu_ms), f(r.images_per_s, 2), f(r.achieved_gflops), r.ceiling_fraction === null ? '—' : `${(100 * r.ceiling_fraction).toFixed(0)}%`,
    f(r.train_step_ms), f(r.train_images_per_s, 2), f(r.peak_mib, 0), f(r.sampling_s_per_image, 2),
    peerCell(r.peer_forward_ms, r.forward_ms), peerCell(r.peer_train_step_ms, r.train_step_ms), r.status,
  ]);
  if (markdown) return [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 || i === head.length - 1 ? '---' : '---:')).join('|')}|`, ...cells.map((c) => `| ${c.join(' | ')} |`)].join('\n');
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  return [head, ...cells].map((c) => c.map((v, i) => (i === 0 || i === head.length - 1 ? v.padEnd(w[i]) : v.padStart(w[i]))).join('  ')).join('\n');
}

async function runBench(o: BenchOpts): Promise<number> {
  const names = parseConfigs(o.configs);
  checkOutputs({ inputs: [o.plot ? o.kernels : null], outputs: [o.json, o.plot] });
  const imageSize = Number(o.imageSize);
  const g = await getDevice();
  const adapter = describeAdapter(g.adapter);
  log(`adapter: ${adapter}; ${g.hasTimestamps ? 'GPU timestamps available: GPU ms is the summed kernel time of one profiled call' : 'no timestamp queries: wall time only'}`);
  const ceiling = await fmaCeilingGflops();
  log(`register-only FMA ceiling: ${ceiling.toFixed(1)} GFLOP/s`);
  const rows: BenchRow[] = [];
  for (const name of names) {
    log(`${name} (batch ${o.batch}, ${imageSize} px)…`);
    const budgetS = o.peers && name === 'DiT-S/2' ? Math.max(o.budgetS, o.peerBudgetS) : o.budgetS;
    rows.push(await benchConfig(name, { batch: o.batch, imageSize, train: !!o.train, sampling: !!o.sampling, reps: o.reps, budgetS, ceilingGflops: ceiling, rate: measuredRate(rows), log }));
  }
  if (o.peers) {
    const s2 = rows.find((r) => r.model === 'DiT-S/2');
    if (!s2) log('--peers compares DiT-S/2: add S/2 to --configs');
    else {
      log('TF.js-WebGPU peer: DiT-S/2 (its own process and device, same adapter)…');
      const p = await runPeer('DiT-S/2', o.batch, imageSize, o.peerReps, !!o.train, (o.train ? 2 : 1) * o.peerBudgetS);
      s2.peer_forward_ms = p.forward_ms;
      s2.peer_train_step_ms = p.train_step_ms;
    }
  }
  let dispatch: DispatchCost | null = null;
  if (o.dispatch) {
    log('dispatch cost…');
    dispatch = await dispatchCost(4000, o.batch);
  }
  const header = `adapter: ${adapter}; ${new Date().toISOString()}; batch ${o.batch}, ${imageSize}×${imageSize}; median of ${o.reps} calls after a warm-up, wall time (GPU ms: kernel time from timestamp queries); FMA ceiling ${ceiling.toFixed(1)} GFLOP/s; Gflops as the paper counts them (multiply-adds, forward, one image), achieved GFLOP/s = 2·Gflops·batch / time`;
  process.stdout.write(`${header}\n\n${table(rows, !!o.markdown)}\n`);
  if (dispatch) {
    process.stdout.write(`\ndispatch cost: engine ${dispatch.engine_us.toFixed(1)} µs per dispatch; raw Dawn loop ${dispatch.raw_new_bind_group_us.toFixed(1)} µs with a new bind group each, ${dispatch.raw_reused_bind_group_us.toFixed(1)} µs reusing one (${(dispatch.engine_us / dispatch.raw_new_bind_group_us).toFixed(2)}× the former)\n`);
    process.stdout.write(`DiT-S/2 at batch ${o.batch}: ${dispatch.dit_s2_train_step_dispatches} dispatches per training step, ${dispatch.dit_s2_sampling_step_dispatches} per guided sampling step\n`);
  }
  if (o.json) {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string; dependencies: Record<string, string> };
    const doc = { adapter, adapter_info: g.adapter, date: new Date().toISOString(), versions: { 'dit-webgpu': pkg.version, webgpu: pkg.dependencies.webgpu, node: process.versions.node }, fma_ceiling_gflops: ceiling, batch: o.batch, image_size: imageSize, reps: o.reps, timing: 'wall (median); forward_gpu_ms from timestamp queries', rows, ...(dispatch ? { dispatch } : {}) };
    await writeFileAtomic(o.json, [new TextEncoder().encode(`${JSON.stringify(doc, null, 1)}\n`)]);
    log(`wrote ${o.json}`);
  }
  if (o.plot) {
    await writeBenchPlot(rows, ceiling, adapter, o.kernels, o.plot);
    log(`wrote ${o.plot}`);
  }
  return 0;
}

/** Left: measured images/s against Gflops per image (log–log); right: kernel GFLOP/s against the ceiling. */
async function writeBenchPlot(rows: BenchRow[], ceiling: number, adapter: string, kernelsFile: string | undefined, file: string): Promise<void> {
  const measured = rows.filter((r) => r.images_per_s !== null);
  const colors = ['#1f4fb4', '#b4321f', '#2f8f3a', '#8a3fb4'];
  const series: Series[] = ['S', 'B', 'L', 'XL'].map((s, i) => ({
    label: `DiT-${s}`, color: colors[i], showPoints: true,
    points: measured.filter((r) => r.model.startsWith(`DiT-${s}/`)).map((r) => ({ x: r.gflops_per_image, y: r.images_per_s! })),
  })).filter((s) => s.points.length);
  const left = chartConfig({ title: `DiT forward on ${adapter}`, x: { label: 'Gflops per image (Table 4)', log: true }, y: { label: 'images / s', log: true }, series, scatter: true,
    pointLabels: series.map((s) => measured.filter((r) => r.model.startsWith(`${s.label}/`)).map((r) => r.model.slice(4))) });
  const charts = [left];
  if (kernelsFile && existsSync(kernelsFile)) {
    const k = JSON.parse(readFileSync(kernelsFile, 'utf8')) as { rows: { kernel: string; gflops?: number }[] };
    const ks = k.rows.filter((r) => r.gflops !== undefined);
    charts.push(chartConfig({
      title: 'kernels (npm run bench:kernels)', x: { label: 'kernel' }, y: { label: 'GFLOP/s' }, scatter: true,
      series: [
        { label: 'measured', color: '#1f4fb4', showPoints: true, points: ks.map((r, i) => ({ x: i + 1, y: r.gflops! })) },
        { label: `FMA ceiling ${ceiling.toFixed(0)}`, color: '#b4321f', dashed: true, points: [{ x: 0.5, y: ceiling }, { x: ks.length + 0.5, y: ceiling }] },
      ],
      pointLabels: [ks.map((r) => r.kernel), []],
    }));
  }
  await renderChartsPng(charts, file, 900, 520);
}
