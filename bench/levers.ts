// `node build/bench/levers.js [--rounds 9] [--only a,b] [--json FILE]`: each CPU-adapter lever
// alone and together, A/B in one run: every setting is its own process (lavapipe reads its vector width and
// Dawn its toggles once per process), the settings interleaved round after round, and each process measures
// the register-only FMA ceiling, the DiT-S/2 linears at batch 8 (GFLOP/s, default variants: no tuning) and
// the quick preset's training step. Reported: medians over rounds, and ratios to the first setting.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { getDevice, closeDevice, describeAdapter } from '../engine/device.js';
import { Tensor, keep, scope, noGrad } from '../engine/tensor.js';
import { availableParallelism } from 'node:os';
import { randn } from '../kernels/random.js';
import { linear } from '../kernels/matmul.js';
import { fmaProbe, fmaProbeFlops } from '../kernels/probe.js';
import { createInterface } from 'node:readline';
import { writeFileAtomic } from '../engine/node.js';
import { quickTrainer, disposeTrainer, cpuMs } from './quickstep.js';
import { parseOptions, intOption } from './options.js';

const USAGE = 'usage: node build/bench/levers.js [--rounds 9] [--only name,…] [--json FILE]';

/** Each lever alone against today's setting (256-bit vectors, every toggle off), then all of them. */
export const SETTINGS: { name: string; env: Record<string, string> }[] = [
  { name: 'baseline (256-bit, safe)', env: { LP_NATIVE_VECTOR_WIDTH: '256' } },
  { name: '512-bit', env: { LP_NATIVE_VECTOR_WIDTH: '512' } },
  { name: 'disable_robustness', env: { LP_NATIVE_VECTOR_WIDTH: '256', DIT_DAWN_OPTIONS: 'enable-dawn-features=disable_robustness' } },
  { name: 'disable_workgroup_init', env: { LP_NATIVE_VECTOR_WIDTH: '256', DIT_DAWN_OPTIONS: 'enable-dawn-features=disable_workgroup_init' } },
  { name: 'no div/mod polyfills', env: { LP_NATIVE_VECTOR_WIDTH: '256', DIT_DAWN_OPTIONS: 'enable-dawn-features=disable_polyfills_on_integer_div_and_mod' } },
  { name: 'all toggles (256-bit)', env: { LP_NATIVE_VECTOR_WIDTH: '256', DIT_TRUSTED_KERNELS: '1' } },
  { name: 'all levers (512-bit, all toggles)', env: { LP_NATIVE_VECTOR_WIDTH: '512', DIT_TRUSTED_KERNELS: '1' } },
];

/** DiT-S/2 at batch 8: 2,048 tokens of 384 through qkv, proj, fc1 and fc2. */
const LINEARS: [string, number, number][] = [['qkv', 384, 1152], ['proj', 384, 384], ['fc1', 384, 1536], ['fc2', 1536, 384]];

/** A child's answer to one measurement: wall GFLOP/s (ceiling, linears) or ms per step, and the CPU equivalent. */
interface Sample { wall: number; cpu: number }

const cores = availableParallelism();

/**
 * The child: builds everything, warms it (pipelines compile), prints READY and the adapter, then answers one
 * measurement per line of stdin ('ceiling', a linear's name, or 'step') with one sample: ≥ 150 ms of calls
 * ended by a full GPU sync, as wall-clock GFLOP/s (ms per step) and the same per CPU-second × the cores.
 */
async function child(): Promise<void> {
  const g = await getDevice();
  const probe = { workgroups: 256, iters: 512, m: 0.999, c: 1e-4 };
  const probeOut = keep(Tensor.empty([probe.workgroups * 64]));
  const ops = new Map<string, { run: () => void; flops: number }>();
  ops.set('ceiling', { run: () => fmaProbe(probeOut, probe), flops: fmaProbeFlops(probe) });
  for (const [name, K, N] of LINEARS) {
    const x = keep(randn([2048, K], 1)), w = keep(randn([N, K], 2)), b = keep(randn([N], 3));
    ops.set(name, { run: () => { linear(x, w, b); }, flops: 2 * 2048 * K * N });
  }
  const t = quickTrainer();
  ops.set('step', { run: () => t.trainStep(), flops: 0 });
  const call = (name: string, run: () => void) => (name === 'step' ? run() : scope(() => noGrad(run)));
  const ks = new Map<string, number>();
  for (const [name, o] of ops) {
    for (let i = 0; i < (name === 'step' ? 3 : 2); i++) call(name, o.run);
    await g.sync('bench');
    const t0 = performance.now();
    call(name, o.run);
    await g.sync('bench');
    ks.set(name, Math.max(1, Math.ceil(150 / (performance.now() - t0))));
  }
  process.stdout.write(`READY ${JSON.stringify({ adapter: describeAdapter(g.adapter) })}\n`);
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (line === 'exit') break;
    const o = ops.get(line)!, k = ks.get(line)!;
    const t0 = performance.now(), c0 = cpuMs();
    for (let i = 0; i < k; i++) call(line, o.run);
    await g.sync('bench');
    const wallMs = performance.now() - t0, cpu = cpuMs() - c0;
    const r: Sample = o.flops ? { wall: (k * o.flops) / wallMs / 1e6, cpu: (k * o.flops * cores) / cpu / 1e6 } : { wall: wallMs / k, cpu: cpu / k / cores };
    process.stdout.write(`R ${JSON.stringify(r)}\n`);
  }
  disposeTrainer(t);
  await closeDevice();
}

/** A running child: `ask` sends one measurement and resolves with its sample. */
interface Child { adapter: string; ask: (what: string) => Promise<Sample>; close: () => void }

function startChild(env: Record<string, string>): Promise<Child> {
  const script = fileURLToPath(import.meta.url);
  const e: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['LP_NATIVE_VECTOR_WIDTH', 'DIT_TRUSTED_KERNELS', 'DIT_DAWN_OPTIONS', 'DIT_LAVAPIPE_WIDTH']) delete e[k];
  const c = spawn(process.execPath, [script, '--child'], { env: { ...e, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  c.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const waiting: ((l: string) => void)[] = [];
  let buf = '';
  c.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) { const l = buf.slice(0, i); buf = buf.slice(i + 1); waiting.shift()?.(l); }
  });
  let exited: string | null = null;
  c.on('close', (code) => { exited = `setting ${JSON.stringify(env)} exited (${code}): ${err.slice(-800)}`; for (const w of waiting.splice(0)) w(''); });
  const next = () => new Promise<string>((resolve, reject) => {
    if (exited) reject(new Error(exited));
    else waiting.push((l) => (exited ? reject(new Error(exited)) : resolve(l)));
  });
  return next().then((ready) => ({
    adapter: (JSON.parse(ready.slice(6)) as { adapter: string }).adapter,
    ask: async (what: string) => { c.stdin.write(`${what}\n`); return JSON.parse((await next()).slice(2)) as Sample; },
    close: () => { c.stdin.write('exit\n'); },
  }));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const a = parseOptions({ child: { type: 'boolean' }, rounds: { type: 'string' }, only: { type: 'string' }, json: { type: 'string' } }, USAGE);
  if (a.child) { await child(); process.exit(0); }
  const rounds = intOption(a, 'rounds', USAGE) ?? 9;
  const only = a.only?.split(',');
  const settings = only ? SETTINGS.filter((s, i) => i === 0 || only.some((o) => s.name.includes(o))) : SETTINGS;
  // One at a time (compiling is heavy), then all alive: every measurement goes round the settings in turn.
  const children: Child[] = [];
  for (const s of settings) { children.push(await startChild(s.env)); process.stderr.write(`ready: ${s.name} — ${children.at(-1)!.adapter}\n`); }
  const what = ['ceiling', ...LINEARS.map(([n]) => n), 'step'];
  const samples = settings.map(() => Object.fromEntries(what.map((w) => [w, [] as Sample[]])));
  for (let r = 0; r < rounds; r++) {
    for (const w of what) {
      // Rotate the order each round so no setting always runs right after another.
      for (let j = 0; j < settings.length; j++) {
        const i = (j + r) % settings.length;
        samples[i][w].push(await children[i].ask(w));
      }
    }
    process.stderr.write(`round ${r + 1}/${rounds}: step ms ${settings.map((s, i) => `${s.name} ${samples[i].step[r].wall.toFixed(0)}`).join(', ')}\n`);
  }
  for (const c of children) c.close();
  // Per setting: medians; against the baseline: the median of the per-round ratios (paired, so slow drifts
  // in the machine's load cancel).
  const ratio = (i: number, w: string, k: 'wall' | 'cpu') => median(samples[i][w].map((x, r) => (w === 'step' ? samples[0][w][r][k] / x[k] : x[k] / samples[0][w][r][k])));
  const rows = settings.map((s, i) => {
    const med = (w: string, k: 'wall' | 'cpu') => median(samples[i][w].map((x) => x[k]));
    const lin = (k: 'wall' | 'cpu') => Object.fromEntries(LINEARS.map(([n]) => [n, med(n, k)]));
    const linRatio = (k: 'wall' | 'cpu') => median(LINEARS.map(([n]) => ratio(i, n, k)));
    return {
      setting: s.name, env: s.env, adapter: children[i].adapter, ceiling: med('ceiling', 'wall'), ceilingRatio: ratio(i, 'ceiling', 'wall'),
      linears: lin('wall'), linearsCpu: lin('cpu'), linearRatio: linRatio('wall'), linearCpuRatio: linRatio('cpu'),
      stepMs: med('step', 'wall'), stepCpuMs: med('step', 'cpu'), stepRatio: ratio(i, 'step', 'wall'), stepCpuRatio: ratio(i, 'step', 'cpu'),
    };
  });
  process.stdout.write(`| setting | FMA ceiling GFLOP/s | DiT-S/2 linears GFLOP/s (qkv, proj, fc1, fc2) | linears vs baseline (wall / CPU) | quick step ms | steps/s | vs baseline (wall / CPU) |\n|---|---:|---:|---:|---:|---:|---:|\n`);
  for (const r of rows) {
    process.stdout.write(`| ${r.setting} | ${r.ceiling.toFixed(1)} (${r.ceilingRatio.toFixed(2)}×) | ${Object.values(r.linears).map((v) => v.toFixed(1)).join(', ')} | ${r.linearRatio.toFixed(2)}× / ${r.linearCpuRatio.toFixed(2)}× | ${r.stepMs.toFixed(1)} | ${(1000 / r.stepMs).toFixed(2)} | ${r.stepRatio.toFixed(2)}× / ${r.stepCpuRatio.toFixed(2)}× |\n`);
  }
  process.stdout.write(`\n${rounds} rounds; every setting its own process, all alive, each measurement taken from each in turn (order rotated per round); values: medians; ratios: median of the per-round ratios to the baseline (> 1 is faster); CPU: the process's CPU time of all threads, per core.\n`);
  if (a.json) await writeFileAtomic(a.json, [new TextEncoder().encode(`${JSON.stringify({ date: new Date().toISOString(), rounds, cores, rows, samples }, null, 1)}\n`)]);
  process.exit(0);
}
main().catch((e: Error) => { process.stderr.write(`${e.stack}\n`); process.exit(1); });
