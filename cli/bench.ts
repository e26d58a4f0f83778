// `dit bench`: the paper's Table 4 (analytic Gflops, parameters) beside what this adapter measures for each
// DiT config — forward, training step, sampling cost, peak memory — with TF.js-WebGPU and PyTorch on the CPU
// in the same run, the CPU cost of a dispatch, where the quick step spends its time, a table (stdout), JSON rows
// and a plot.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { getDevice, gpu, describeAdapter } from '../engine/device.js';
import { writeFileAtomic } from '../engine/node.js';
import { fmaCeilingGflops } from '../kernels/probe.js';
import { DIT_MODEL_NAMES, ditConfig } from '../dit/config.js';
import { RECIPES } from '../dit/recipes.js';
import { benchConfig, dispatchCost, measuredRate, type BenchRow, type DispatchCost } from '../bench/ditbench.js';
import { quickTrainer, timeQuickStep, profileQuickStep, disposeTrainer, type StepProfile } from '../bench/quickstep.js';
import { chartConfig, renderChartsPng, type Series } from '../data/plot.js';
import { int, choice, examples, log, checkOutputs, UsageError, LIMITS } from './options.js';

/** The batch of the quick recipe's training step, timed here and by the PyTorch peer (bench/quickstep.ts). */
const QUICK_BATCH = RECIPES.quick.optim.batch;

interface BenchOpts { configs: string; batch: number; imageSize: string; train?: boolean; sampling?: boolean; peers?: boolean; peerReps: number; peerBudgetS: number; json?: string; markdown?: boolean; plot?: string; kernels?: string; budgetS: number; reps: number; dispatch?: boolean; profile?: boolean }

export function registerBench(program: Command): void {
  const cmd = program.command('bench')
    .description('measure every DiT config on this adapter beside the paper\'s Table 4 (Gflops, parameters): forward, training step, sampling, memory; TF.js-WebGPU and PyTorch (CPU) side by side; dispatch cost; plots')
    .option('--configs <list>', 'all, or names such as S/2,B/4 (DiT- prefix optional)', 'all')
    .addOption(int('--batch <n>', 'images per batch', { min: 1, max: LIMITS.batch, def: 8 }))
    .addOption(choice('--image-size <px>', 'image size (latent = size / 8)', ['256', '512'], '256'))
    .option('--train', 'also the training step (forward + backward + AdamW) and its peak live GPU memory')
    .option('--sampling', 'also the cost of one image with 250 DDPM steps and guidance 4')
    .option('--peers', 'peers in the same run, each in its own process: TF.js-WebGPU on the same adapter (DiT-S/2 forward, and training step with --train, at --batch; needs S/2 in --configs), and PyTorch on the CPU with one thread per core (the quick recipe\'s training step beside ours, measured here too, and the DiT-S/2 forward at --batch; Python from $DIT_PYTHON, else python3, else /usr/bin/python3: the first that imports torch; skipped, saying why, when none does)')
    .addOption(int('--peer-reps <n>', 'timed calls of each peer measurement (TF.js\'s DiT-S/2 training step takes minutes on CPU drivers; PyTorch\'s quick step takes at least 5)', { min: 1, max: 1000, def: 3 }))
    .addOption(int('--peer-budget-s <s>', 'with --peers, the budget of DiT-S/2 (ours, so the ratio has both sides), of each of the TF.js peer\'s forward and training step, and of the whole PyTorch peer process', { min: 1, max: LIMITS.seconds, def: 600 }))
    .addOption(int('--reps <n>', 'timed calls per measurement after the warm-up (median)', { min: 1, max: 1000, def: 5 }))
    .addOption(int('--budget-s <s>', 'skip a measurement whose calls (warm-up included) would take longer than this, predicted from the smaller configs measured before it (the row says so); 60 keeps --configs all --train --peers near 20 minutes on lavapipe', { min: 1, max: LIMITS.seconds, def: 60 }))
    .option('--profile', 'where the quick recipe\'s training step spends its time: GPU ms per kernel family and per kernel (timestamp queries, one profiled step after a warm-up)')
    .option('--dispatch', 'the CPU cost of a dispatch through the engine beside a raw Dawn loop, and the dispatches of a DiT-S/2 step')
    .option('--json <file>', 'write the rows (with adapter, date and versions) as JSON')
    .option('--markdown', 'print the table as Markdown')
    .option('--plot <file.png>', 'images/s against Gflops per image (log–log), and the kernel GFLOP/s against the FMA ceiling')
    .option('--kernels <file.json>', 'kernel results for the plot\'s second panel (from npm run bench:kernels -- --json)', 'bench/results/lavapipe-kernels.json')
    .action(async (o: BenchOpts) => { process.exitCode = await runBench(o); });
  examples(cmd, [
    'dit bench --configs all --train --peers --plot bench/results/dit-bench.png --json bench/results/dit-bench.json --markdown',
    'dit bench --configs S/2 --dispatch',
    'dit bench --configs S/2 --profile',
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

/** How a child process ended: exit code, what it printed, and why it failed in words (null when it exited 0). */
interface Ran { code: number | null; out: string; err: string; why: string | null }

/** Runs `cmd args` stopped after `limitS`; never rejects (a missing binary is a `why`, not a throw). */
function runProcess(cmd: string, args: string[], limitS: number, env?: NodeJS.ProcessEnv): Promise<Ran> {
  return new Promise((resolve) => {
    let out = '', err = '', timedOut = false, done = false;
    const finish = (r: Ran) => { if (!done) { done = true; clearTimeout(timer); resolve(r); } };
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    const timer = setTimeout(() => { timedOut = true; child.kill(); }, limitS * 1000);
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('error', (e: NodeJS.ErrnoException) => finish({ code: null, out, err, why: e.code === 'ENOENT' ? 'not found' : e.message }));
    child.on('close', (code, signal) => {
      const last = err.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('Warning')).slice(-1)[0];
      finish({ code, out, err, why: timedOut ? `stopped after ${limitS} s` : code === 0 ? null : `exit ${code ?? signal}${last ? `: ${last}` : ''}` });
    });
  });
}

/** Where the PyTorch peer looks for a Python with torch, in order: $DIT_PYTHON, python3 on the PATH, Debian's /usr/bin/python3. */
export function torchPythonCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  return [...new Set([env.DIT_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p))];
}

/** The first candidate that imports torch, with torch's version, or null; why each one before it was passed over goes to `say`. */
export async function findTorchPython(candidates: string[], say: (m: string) => void = log, limitS = 60): Promise<{ python: string; torch: string } | null> {
  for (const python of candidates) {
    const r = await runProcess(python, ['-c', 'import torch; print(torch.__version__)'], limitS);
    const version = r.out.trim().split('\n').pop();
    if (r.why === null && version) return { python, torch: version };
    say(`  PyTorch peer: ${python}: ${r.why ?? 'printed no torch version'}`);
  }
  return null;
}

/** The PyTorch CPU peer's result: null times with the reason when it was absent, failed or ran out of time. */
export interface TorchPeer {
  python: string | null; torch: string | null; threads: number; train_step_ms: number | null; forward_ms: number | null; status: string;
  /** The 1-minute load average when it started, and $OMP_WAIT_POLICY as it ran (torch's OpenMP threads spin-wait by default). */
  load_1m: number; omp_wait_policy: string | null;
}

/**
 * Runs bench/peer_torch_cpu.py (the quick recipe's training step and the DiT-S/2 forward at `batch`) in its own
 * process with one torch thread per core, stopped after `limitS` (the probe for torch included).
 */
export async function runTorchPeer(batch: number, imageSize: number, reps: number, limitS: number, candidates = torchPythonCandidates()): Promise<TorchPeer> {
  const threads = os.availableParallelism?.() ?? os.cpus().length;
  const load = os.loadavg()[0], omp = process.env.OMP_WAIT_POLICY ?? null;
  const none = (status: string, python: string | null = null, torch: string | null = null): TorchPeer => ({ python, torch, threads, train_step_ms: null, forward_ms: null, status, load_1m: load, omp_wait_policy: omp });
  // Busy cores hurt torch far more than us: its OpenMP threads spin-wait at every parallel region and wait on
  // each other when one is descheduled (a training step several times slower on a loaded 2-core machine).
  if (load > threads && !omp) log(`  the machine is busy (1-minute load ${load.toFixed(1)} on ${threads} cores, this process's last minute included): PyTorch's OpenMP threads suffer more from that than ours; run alone, or set OMP_WAIT_POLICY=PASSIVE`);
  const t0 = performance.now();
  const found = await findTorchPython(candidates, log, Math.min(60, limitS));
  if (!found) {
    const status = `skipped: no Python with torch among ${candidates.join(', ')} (set DIT_PYTHON to one)`;
    log(`  PyTorch peer ${status}`);
    return none(status);
  }
  const leftS = limitS - (performance.now() - t0) / 1000;
  if (leftS < 1) { log(`  PyTorch peer skipped: its ${limitS} s (--peer-budget-s) went on finding torch`); return none(`over --peer-budget-s ${limitS} finding torch`, found.python, found.torch); }
  const script = fileURLToPath(new URL('../../bench/peer_torch_cpu.py', import.meta.url));
  const r = await runProcess(found.python, [script, String(threads), String(batch), String(reps), String(imageSize / 8), String(QUICK_BATCH)], leftS, { ...process.env, OMP_NUM_THREADS: String(threads) });
  const line = r.out.split('\n').find((l) => l.startsWith('PEER '));
  if (r.why !== null || !line) {
    const why = r.why === null ? 'printed no PEER line' : r.why.startsWith('stopped') ? `${r.why} (--peer-budget-s)` : r.why;
    log(`  PyTorch peer failed (${found.python}, torch ${found.torch}): ${why}`);
    return none(`failed: ${why}`, found.python, found.torch);
  }
  const p = JSON.parse(line.slice(5)) as { train_step_ms: number; forward_ms: number; threads: number; torch: string };
  return { python: found.python, torch: p.torch, threads: p.threads, train_step_ms: p.train_step_ms, forward_ms: p.forward_ms, status: 'ok', load_1m: load, omp_wait_policy: omp };
}

/** `fn` on a fresh quick-recipe trainer (bench/quickstep.ts), disposed after; null (logged as `what` failing) if it throws. */
async function withQuickTrainer<T>(what: string, fn: (t: ReturnType<typeof quickTrainer>) => Promise<T>): Promise<T | null> {
  let t: ReturnType<typeof quickTrainer> | null = null;
  try {
    t = quickTrainer();
    return await fn(t);
  } catch (e) {
    log(`  ${what} failed: ${(e as Error).message}`);
    return null;
  } finally {
    if (t) disposeTrainer(t);
  }
}

/** Our quick-recipe training step: median wall ms of `reps` samples after the warm-up. */
const ourQuickStep = (reps: number) => withQuickTrainer('our quick-recipe step', async (t) => {
  const { wall } = await timeQuickStep(t, reps);
  return [...wall].sort((a, b) => a - b)[Math.floor(wall.length / 2)];
});

/** One profiled quick-recipe step; null (logged) without timestamp queries. */
async function ourQuickStepProfile(): Promise<StepProfile | null> {
  if (!gpu().hasTimestamps) { log('  --profile: this adapter has no timestamp queries, so no per-kernel times'); return null; }
  return withQuickTrainer('the profiled quick-recipe step', (t) => profileQuickStep(t));
}

/** The profile as a table: the families by GPU time, then the `top` costliest kernels with their shapes. */
function profileTable(p: StepProfile, markdown: boolean, top = 12): string {
  const title = `the quick recipe's training step (batch ${QUICK_BATCH}), one profiled step: wall ${p.wallMs.toFixed(0)} ms (one pass per dispatch), GPU ${p.gpuMs.toFixed(0)} ms in ${p.dispatches} dispatches`;
  const rows = (list: { name: string; ms: number; count: number }[]) => list.map((k) => [k.name, k.ms.toFixed(1), String(k.count), `${((100 * k.ms) / p.gpuMs).toFixed(1)}%`]);
  const render = (head: string[], cells: string[][]) => {
    if (markdown) return [`| ${head.join(' | ')} |`, '|---|---:|---:|---:|', ...cells.map((c) => `| ${c.join(' | ')} |`)].join('\n');
    const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
    return [head, ...cells].map((c) => c.map((v, i) => (i === 0 ? v.padEnd(w[i]) : v.padStart(w[i]))).join('  ')).join('\n');
  };
  return [title, '', render(['kernel family', 'GPU ms', 'dispatches', 'share'], rows(p.families)), '', render([`top ${top} kernels`, 'GPU ms', 'dispatches', 'share'], rows(p.kernels.slice(0, top)))].join('\n');
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

/** Ours beside the PyTorch CPU peer, a line per measurement, the peer's ms with its ratio to ours as the TF.js cells. */
function torchTable(p: TorchPeer, quickMs: number | null, s2: BenchRow | undefined, batch: number, markdown: boolean): string {
  const title = p.status === 'ok'
    ? `PyTorch ${p.torch} on the CPU (${p.threads} threads, ${p.python}, its own process); (n×) = its time over ours:`
    : `PyTorch on the CPU: ${p.status}`;
  const head = ['measurement', 'ours ms', 'PyTorch CPU ms'];
  const cells = [
    [`quick recipe training step (batch ${QUICK_BATCH})`, f(quickMs), peerCell(p.train_step_ms, quickMs)],
    [`DiT-S/2 forward (batch ${batch})`, s2 ? f(s2.forward_ms) : '— (S/2 not in --configs)', peerCell(p.forward_ms, s2?.forward_ms ?? null)],
  ];
  if (markdown) return [title, '', `| ${head.join(' | ')} |`, '|---|---:|---:|', ...cells.map((c) => `| ${c.join(' | ')} |`)].join('\n');
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  return [title, ...[head, ...cells].map((c) => c.map((v, i) => (i === 0 ? v.padEnd(w[i]) : v.padStart(w[i]))).join('  '))].join('\n');
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
  const s2 = rows.find((r) => r.model === 'DiT-S/2');
  let torchPeer: TorchPeer | null = null, quickMs: number | null = null;
  if (o.peers) {
    if (!s2) log('--peers: the TF.js peer compares DiT-S/2, skipped (add S/2 to --configs); the PyTorch peer\'s DiT-S/2 forward will have no ratio');
    else {
      log('TF.js-WebGPU peer: DiT-S/2 (its own process and device, same adapter)…');
      const p = await runPeer('DiT-S/2', o.batch, imageSize, o.peerReps, !!o.train, (o.train ? 2 : 1) * o.peerBudgetS);
      s2.peer_forward_ms = p.forward_ms;
      s2.peer_train_step_ms = p.train_step_ms;
    }
    const quickReps = Math.max(5, o.reps);
    log(`our quick-recipe training step (batch ${QUICK_BATCH}, synthetic latents; median of ${quickReps} samples after a warm-up)…`);
    quickMs = await ourQuickStep(quickReps);
    log(`PyTorch CPU peer: the quick-recipe training step and the DiT-S/2 forward at batch ${o.batch} (its own process, at most ${o.peerBudgetS} s)…`);
    torchPeer = await runTorchPeer(o.batch, imageSize, o.peerReps, o.peerBudgetS);
    if (s2) s2.peer_torch_cpu_forward_ms = torchPeer.forward_ms;
  }
  let profile: StepProfile | null = null;
  if (o.profile) {
    log('the quick-recipe training step, profiled per kernel…');
    profile = await ourQuickStepProfile();
  }
  let dispatch: DispatchCost | null = null;
  if (o.dispatch) {
    log('dispatch cost…');
    dispatch = await dispatchCost(4000, o.batch);
  }
  const header = `adapter: ${adapter}; ${new Date().toISOString()}; batch ${o.batch}, ${imageSize}×${imageSize}; median of ${o.reps} calls after a warm-up, wall time (GPU ms: kernel time from timestamp queries); FMA ceiling ${ceiling.toFixed(1)} GFLOP/s; Gflops as the paper counts them (multiply-adds, forward, one image), achieved GFLOP/s = 2·Gflops·batch / time`;
  process.stdout.write(`${header}\n\n${table(rows, !!o.markdown)}\n`);
  if (torchPeer) process.stdout.write(`\n${torchTable(torchPeer, quickMs, s2, o.batch, !!o.markdown)}\n`);
  if (profile) process.stdout.write(`\n${profileTable(profile, !!o.markdown)}\n`);
  if (dispatch) {
    process.stdout.write(`\ndispatch cost: engine ${dispatch.engine_us.toFixed(1)} µs per dispatch; raw Dawn loop ${dispatch.raw_new_bind_group_us.toFixed(1)} µs with a new bind group each, ${dispatch.raw_reused_bind_group_us.toFixed(1)} µs reusing one (${(dispatch.engine_us / dispatch.raw_new_bind_group_us).toFixed(2)}× the former)\n`);
    process.stdout.write(`DiT-S/2 at batch ${o.batch}: ${dispatch.dit_s2_train_step_dispatches} dispatches per training step, ${dispatch.dit_s2_sampling_step_dispatches} per guided sampling step\n`);
  }
  if (o.json) {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string; dependencies: Record<string, string> };
    const doc = { adapter, adapter_info: g.adapter, date: new Date().toISOString(), versions: { 'dit-webgpu': pkg.version, webgpu: pkg.dependencies.webgpu, node: process.versions.node }, fma_ceiling_gflops: ceiling, batch: o.batch, image_size: imageSize, reps: o.reps, timing: 'wall (median); forward_gpu_ms from timestamp queries', rows, ...(dispatch ? { dispatch } : {}), ...(profile ? { quick_step_profile: profile } : {}),
      ...(torchPeer ? { quick_train_step_ms: quickMs, peer_torch_cpu_train_step_ms: torchPeer.train_step_ms, peer_torch_cpu_forward_ms: torchPeer.forward_ms, peer_torch_cpu: { python: torchPeer.python, torch: torchPeer.torch, threads: torchPeer.threads, reps: o.peerReps, status: torchPeer.status, load_1m: torchPeer.load_1m, omp_wait_policy: torchPeer.omp_wait_policy } } : {}) };
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
