// `npm run bench:kernels [-- --quick] [-- --json FILE] [-- --no-peer] [-- --no-tune] [-- --rounds N] [-- --only TEXT]`:
// per kernel and shape, ms, GFLOP/s or GB/s and the variant used, beside TensorFlow.js-WebGPU on the same adapter
// in the same run (a child process with its own device), and the adapter's register-only FMA rate as the ceiling.
// Every case goes through kernels/registry.ts: families with alternatives are tuned first (each candidate
// checked against float64, then timed; the choices persist per adapter in .cache/autotune.json), and each
// result is checked against the float64 reference before it is timed: a case that fails is reported, not timed.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { getDevice, describeAdapter, closeDevice } from '../engine/device.js';
import { writeFileAtomic } from '../engine/node.js';
import { fmaCeilingGflops } from '../kernels/probe.js';
import { timeGpu, tuneProblem } from '../kernels/autotune.js';
import { family, prepare, runForced, outputError, type Family } from '../kernels/registry.js';
import type { MatmulCase } from '../kernels/matmul.js';
import type { ElementwiseProblem } from '../kernels/elementwise.js';
import { isTuned, loadStoredTuning, storeTuning, type StoredTuning } from '../kernels/tuning.js';
import type { AttentionProblem } from '../kernels/attention.js';
import type { LayerNormProblem } from '../kernels/layernorm.js';
import type { Conv2dProblem } from '../kernels/conv2d.js';
import { benchCases, type BenchCase } from './cases.js';
import { parseOptions, intOption } from './options.js';

interface Row { kernel: string; shape: string; variant: string; ms: number | null; error: number; tolerance: number; gflops?: number; gbps?: number; peer: string | null; peer_ms: number | null; note?: string }

const TUNE_FILE = '.cache/autotune.json';

const USAGE = 'usage: npm run bench:kernels [-- --quick] [-- --json FILE] [-- --no-peer] [-- --no-tune] [-- --rounds N] [-- --only TEXT]';

function options() {
  const values = parseOptions({
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
    'no-peer': { type: 'boolean', default: false },
    'no-tune': { type: 'boolean', default: false },
    rounds: { type: 'string' },
    only: { type: 'string' },
  }, USAGE);
  return { ...values, rounds: intOption(values, 'rounds', USAGE) ?? (values.quick ? 1 : 2) };
}

function fmtShape(c: BenchCase): string {
  switch (c.kind) {
    case 'matmul': return `${c.M}×${c.K}·${c.transB ? `(${c.N}×${c.K})ᵀ` : `${c.K}×${c.N}`}`;
    case 'attention': return `B${c.B} H${c.H} T${c.T} d${c.dh}`;
    case 'layernorm': return `[${c.B},${c.T},${c.D}]`;
    case 'conv': return `[${c.B},${c.C},${c.H},${c.W}] * [${c.Co},${c.C},${c.K},${c.K}]`;
    default: return `${c.n} elements`;
  }
}

/** The registry family and problem of a case. */
function problemOf(c: BenchCase): { f: Family<unknown>; p: unknown } {
  switch (c.kind) {
    case 'matmul': return { f: family('matmul'), p: { M: c.M, N: c.N, K: c.K, batch: 1, transA: false, transB: c.transB, strideA: 0, strideB: 0, dtA: 'f32', dtB: 'f32' } satisfies MatmulCase };
    case 'attention': return { f: family('attention'), p: { B: c.B, H: c.H, Tq: c.T, Tk: c.T, dh: c.dh, packed: false, dtype: 'f32' } satisfies AttentionProblem };
    case 'layernorm': return { f: family('layernorm'), p: { mode: 'modulate', B: c.B, T: c.T, D: c.D } satisfies LayerNormProblem };
    case 'conv': return { f: family('conv2d'), p: { B: c.B, Ci: c.C, H: c.H, W: c.W, Co: c.Co, KH: c.K, KW: c.K, stride: 1, pad: [(c.K - 1) / 2, (c.K - 1) / 2, (c.K - 1) / 2, (c.K - 1) / 2], bias: false } satisfies Conv2dProblem };
    case 'gelu': return { f: family('elementwise'), p: { op: 'gelu', shapes: [[c.n]] } satisfies ElementwiseProblem };
    case 'add': return { f: family('elementwise'), p: { op: 'add', shapes: [[c.n], [c.n]] } satisfies ElementwiseProblem };
    case 'neg': return { f: family('elementwise'), p: { op: 'neg', shapes: [[c.n]] } satisfies ElementwiseProblem };
  }
}

/** Tunes a case's problem if its family has alternatives and this adapter has no choice for it yet. */
async function tune(f: Family<unknown>, p: unknown, log: (m: string) => void): Promise<void> {
  if (!f.key || isTuned(f.name, f.key(p))) return;
  await tuneProblem({ family: f.name, key: f.key(p), problem: p }, { reps: 1, onProgress: (m) => log(`  ${m}`) });
}

/** Checks the variant the automatic choice takes against float64, then times it (not when the check fails). */
async function runOurs(c: BenchCase, reps: number, log: (m: string) => void): Promise<{ variant: string; ms: number | null; error: number; tolerance: number }> {
  const { f, p } = problemOf(c);
  const variant = f.choose?.(p) ?? Object.keys(f.variants).find((v) => !f.unsupported(v, p))!;
  const x = prepare(f, p);
  try {
    const got = await runForced(f, p, variant, x);
    const refs = f.reference(p, x.host.map((h) => h.data));
    const error = Math.max(...got.map((g, k) => outputError(g, refs[k]).error));
    const tolerance = f.tolerance(p);
    if (!(error <= tolerance)) {
      log(`  ${c.id}: ${variant} FAILED its check: rel-to-max error ${error.toExponential(2)} against float64 is over ${tolerance}; not timed`);
      return { variant, ms: null, error, tolerance };
    }
    return { variant, ms: await timeGpu(() => { f.run(p, x.tensors, variant); }, reps), error, tolerance };
  } finally {
    x.dispose();
  }
}

/** Runs the TF.js peer in a child process; resolves id → ms (empty when it is not installed or fails). */
function runPeer(cases: BenchCase[], reps: number, log: (m: string) => void): Promise<Map<string, number>> {
  const script = fileURLToPath(new URL('../../bench/peer_tfjs.mjs', import.meta.url));
  return new Promise((resolve) => {
    const out = new Map<string, number>();
    const child = spawn(process.execPath, [script, JSON.stringify(cases), String(reps)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i); buf = buf.slice(i + 1);
        if (line.startsWith('PEER ')) { const r = JSON.parse(line.slice(5)); out.set(r.id, r.ms); log(`  tfjs ${r.id}: ${r.ms.toFixed(1)} ms`); }
      }
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('close', (code) => {
      if (code !== 0) log(`  TF.js peer exited with ${code}: ${err.split('\n').filter((l) => !l.startsWith('Warning')).slice(-3).join(' | ')}`);
      resolve(out);
    });
  });
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

async function main(): Promise<number> {
  const o = options();
  const reps = o.quick ? 3 : 5;
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const g = await getDevice();
  const adapter = describeAdapter(g.adapter);
  const stored: StoredTuning = existsSync(TUNE_FILE) ? JSON.parse(readFileSync(TUNE_FILE, 'utf8')) : {};
  log(`adapter: ${adapter}; ${loadStoredTuning(stored)} tuned choices loaded for it from ${TUNE_FILE}`);
  const cases = benchCases(o.quick).filter((c) => !o.only || c.id.includes(o.only));
  const ceiling = await fmaCeilingGflops();
  log(`register-only FMA ceiling: ${ceiling.toFixed(1)} GFLOP/s`);
  if (!o['no-tune']) {
    log('tuning (every candidate checked against float64, then timed)');
    for (const c of cases) { const { f, p } = problemOf(c); await tune(f, p, log); }
    await writeFileAtomic(TUNE_FILE, [new TextEncoder().encode(JSON.stringify(storeTuning(stored), null, 1))]);
  }
  const ours = new Map<string, { ms: number[]; variant: string; error: number; tolerance: number }>();
  const peer = new Map<string, number[]>();
  for (let round = 0; round < o.rounds; round++) {
    log(`round ${round + 1}/${o.rounds}: dit-webgpu`);
    for (const c of cases) {
      const r = await runOurs(c, reps, log);
      const e = ours.get(c.id) ?? { ms: [], variant: r.variant, error: 0, tolerance: r.tolerance };
      if (r.ms !== null) e.ms.push(r.ms);
      e.variant = r.variant; e.error = Math.max(e.error, r.error);
      ours.set(c.id, e);
      if (r.ms !== null) log(`  ours ${c.id}: ${r.ms.toFixed(1)} ms (${r.variant}, checked: error ${r.error.toExponential(1)})`);
    }
    if (!o['no-peer']) {
      log(`round ${round + 1}/${o.rounds}: TF.js-WebGPU`);
      for (const [id, ms] of await runPeer(cases, reps, log)) peer.set(id, [...(peer.get(id) ?? []), ms]);
    }
  }
  const rows: Row[] = cases.map((c) => {
    const r = ours.get(c.id)!;
    const ms = r.ms.length ? median(r.ms) : null;
    const pm = peer.get(c.id);
    const row: Row = { kernel: c.id, shape: fmtShape(c), variant: r.variant, ms, error: r.error, tolerance: r.tolerance, peer: pm ? 'tfjs-webgpu 4.22.0' : null, peer_ms: pm ? median(pm) : null };
    if (ms !== null) { if ('flops' in c) row.gflops = c.flops / ms / 1e6; else row.gbps = c.bytes / ms / 1e6; }
    if (ms === null) row.note = 'failed its float64 check: not timed';
    return row;
  });
  const base = rows.find((r) => r.kernel.startsWith('neg') && r.gbps !== undefined);
  const rate = (r: Row) => (r.gflops !== undefined ? `${r.gflops.toFixed(2)} GFLOP/s` : r.gbps !== undefined ? `${r.gbps.toFixed(2)} GB/s${base && r !== base ? ` (${(r.gbps / base.gbps!).toFixed(2)}× neg's)` : ''}` : '—');
  const lines = [
    `adapter: ${adapter}; FMA ceiling ${ceiling.toFixed(1)} GFLOP/s; ${o.rounds} round(s), median of ${reps} samples each; every result checked against float64 before timing; ${new Date().toISOString()}`,
    '',
    '| kernel | shape | variant | check (rel err) | ms | GFLOP/s or GB/s | TF.js ms | speed-up vs TF.js |',
    '|---|---|---|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.kernel} | ${r.shape} | ${r.variant} | ${r.error.toExponential(1)}${r.ms === null ? ' FAILED' : ''} | ${r.ms === null ? '—' : r.ms.toFixed(1)} | ${rate(r)} | ${r.peer_ms !== null ? r.peer_ms.toFixed(1) : '—'} | ${r.peer_ms !== null && r.ms !== null ? `${(r.peer_ms / r.ms).toFixed(2)}×` : '—'} |`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (o.json) {
    await writeFileAtomic(o.json, [new TextEncoder().encode(JSON.stringify({ adapter, adapterInfo: g.adapter, fmaCeilingGflops: ceiling, date: new Date().toISOString(), rows }, null, 1))]);
    log(`wrote ${o.json}`);
  }
  await closeDevice();
  return rows.some((r) => r.ms === null) ? 1 : 0;
}

main().then((code) => process.exit(code), (e: Error) => { process.stderr.write(`bench: ${e.stack}\n`); process.exit(1); });
