// `npm run bench:kernels [-- --quick] [-- --json FILE] [-- --no-peer] [-- --rounds N]`: per kernel and shape,
// ms, GFLOP/s or GB/s and the variant chosen, beside TensorFlow.js-WebGPU on the same adapter in the same run
// (a child process with its own device), and the adapter's register-only FMA rate as the ceiling.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { getDevice, describeAdapter, closeDevice } from '../engine/device.js';
import { Tensor, keep } from '../engine/tensor.js';
import { writeFileAtomic } from '../engine/node.js';
import { matmul } from '../kernels/matmul.js';
import { randn } from '../kernels/random.js';
import { map, unary, binary } from '../kernels/elementwise.js';
import { adaLNModulate } from '../kernels/layernorm.js';
import { conv2d } from '../kernels/conv2d.js';
import { timeGpu } from '../kernels/autotune.js';
import { tuneProblem } from '../kernels/autotune.js';
import { tuningTable, loadTuningTable, problemKey, chooseMatmulVariant, recordAttentionChoice, type MatmulProblem } from '../kernels/tuning.js';
import { flashAttention, attentionUnfused } from '../kernels/attention.js';
import { Params, launch } from '../kernels/util.js';
import { benchCases, type BenchCase } from './cases.js';
import { parseArgs } from '../cli/args.js';

interface Row { kernel: string; shape: string; variant: string; ms: number; gflops?: number; gbps?: number; peer: string | null; peer_ms: number | null; note?: string }

const TUNE_FILE = '.cache/autotune.json';

/** Register-only FMA throughput (GFLOP/s): the adapter's arithmetic ceiling. */
async function fmaCeiling(): Promise<number> {
  const ACC = 4, UNROLL = 8, ITERS = 512, WGS = 256;
  const body = Array.from({ length: UNROLL }, () => Array.from({ length: ACC }, (_, i) => `a${i} = fma(a${i}, m, c);`).join(' ')).join('\n    ');
  const code = /* wgsl */`
struct P { iters: u32, m: f32, c: f32, _p: u32 }
@group(0) @binding(0) var<uniform> u: P;
@group(0) @binding(1) var<storage, read_write> outp: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let m = vec4f(u.m); let c = vec4f(u.c);
  ${Array.from({ length: ACC }, (_, i) => `var a${i} = vec4f(f32(gid.x & 7u) * 1e-3 + ${i}.0 * 0.01, 0.1, 0.2, 0.3);`).join('\n  ')}
  for (var i = 0u; i < u.iters; i++) {
    ${body}
  }
  outp[gid.x] = dot(${Array.from({ length: ACC }, (_, i) => `a${i}`).join(' + ')}, vec4f(1.0));
}`;
  const out = keep(Tensor.empty([WGS * 64]));
  const ms = await timeGpu(() => launch('fma', code, [out], [WGS], new Params().u(ITERS).f(0.999, 1e-4).u(0)), 3);
  out.dispose();
  return (WGS * 64 * ITERS * UNROLL * ACC * 4 * 2) / ms / 1e6;
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

/** Times one case on our engine; returns ms and the variant used. */
async function runOurs(c: BenchCase, reps: number, tune: boolean, log: (m: string) => void): Promise<{ ms: number; variant: string; note?: string }> {
  const T: Tensor[] = [];
  const r = (shape: number[], seed: number) => { const t = keep(randn(shape, seed)); T.push(t); return t; };
  try {
    switch (c.kind) {
      case 'matmul': {
        const a = r([c.M, c.K], 1), b = r(c.transB ? [c.N, c.K] : [c.K, c.N], 2);
        const p: MatmulProblem = { M: c.M, N: c.N, K: c.K, batch: 1, transA: false, transB: c.transB, strideA: 0, strideB: 0, dtA: 'f32', dtB: 'f32' };
        if (tune && !tuningTable()[problemKey(p)]) {
          const res = await tuneProblem(p, 1);
          log(`  tuned ${c.id}: ${Object.entries(res.ms).sort((x, y) => x[1] - y[1]).slice(0, 4).map(([v, ms]) => `${v} ${ms.toFixed(1)}`).join(', ')} ms`);
        }
        const variant = chooseMatmulVariant(p);
        return { ms: await timeGpu(() => { matmul(a, b, { transB: c.transB }); }, reps), variant };
      }
      case 'attention': {
        const D = c.H * c.dh;
        const q = r([c.B, c.T, D], 1), k = r([c.B, c.T, D], 2), v = r([c.B, c.T, D], 3);
        const flash = await timeGpu(() => { flashAttention(q, k, v, c.H); }, reps);
        const unfused = await timeGpu(() => { attentionUnfused(q, k, v, c.H); }, reps);
        recordAttentionChoice(c.B, c.H, c.T, c.T, c.dh, flash <= unfused ? 'flash' : 'unfused');
        return flash <= unfused ? { ms: flash, variant: 'flash', note: `unfused ${unfused.toFixed(1)} ms` } : { ms: unfused, variant: 'unfused', note: `flash ${flash.toFixed(1)} ms` };
      }
      case 'layernorm': {
        const x = r([c.B, c.T, c.D], 1), sh = r([c.B, c.D], 2), sc = r([c.B, c.D], 3);
        return { ms: await timeGpu(() => { adaLNModulate(x, sh, sc); }, reps), variant: 'fused' };
      }
      case 'gelu': { const x = r([c.n], 1); return { ms: await timeGpu(() => { unary('gelu', x); }, reps), variant: 'vec4' }; }
      case 'add': { const x = r([c.n], 1), y = r([c.n], 2); return { ms: await timeGpu(() => { binary('add', x, y); }, reps), variant: 'vec4' }; }
      case 'copy': { const x = r([c.n], 1); return { ms: await timeGpu(() => { map('x', { x }); }, reps), variant: 'vec4' }; }
      case 'conv': {
        const x = r([c.B, c.C, c.H, c.W], 1), w = r([c.Co, c.C, c.K, c.K], 2);
        return { ms: await timeGpu(() => { conv2d(x, w, null, { padding: (c.K - 1) / 2 }); }, reps), variant: 'direct' };
      }
    }
  } finally {
    for (const t of T) t.dispose();
  }
  throw new Error(`unknown bench case ${JSON.stringify(c)}`);
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

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const quick = a.bool('quick');
  const rounds = a.num('rounds') ?? (quick ? 1 : 2);
  const reps = quick ? 3 : 5;
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const g = await getDevice();
  const adapter = describeAdapter(g.adapter);
  if (existsSync(TUNE_FILE)) {
    const saved = JSON.parse(readFileSync(TUNE_FILE, 'utf8')) as Record<string, Record<string, string>>;
    loadTuningTable(saved[g.adapter.description] ?? {});
  }
  log(`adapter: ${adapter}`);
  const cases = benchCases(quick).filter((c) => !a.str('only') || c.id.includes(a.str('only')!));
  const ceiling = await fmaCeiling();
  log(`register-only FMA ceiling: ${ceiling.toFixed(1)} GFLOP/s`);
  const ours = new Map<string, { ms: number[]; variant: string; note?: string }>();
  const peer = new Map<string, number[]>();
  for (let round = 0; round < rounds; round++) {
    log(`round ${round + 1}/${rounds}: dit-webgpu`);
    for (const c of cases) {
      const r = await runOurs(c, reps, !a.bool('no-tune'), log);
      const e = ours.get(c.id) ?? { ms: [], variant: r.variant, note: r.note };
      e.ms.push(r.ms); e.variant = r.variant; e.note = r.note;
      ours.set(c.id, e);
      log(`  ours ${c.id}: ${r.ms.toFixed(1)} ms (${r.variant})`);
    }
    if (!a.bool('no-peer')) {
      log(`round ${round + 1}/${rounds}: TF.js-WebGPU`);
      for (const [id, ms] of await runPeer(cases, reps, log)) peer.set(id, [...(peer.get(id) ?? []), ms]);
    }
  }
  // Persist what the tuner found, per adapter.
  const all = existsSync(TUNE_FILE) ? JSON.parse(readFileSync(TUNE_FILE, 'utf8')) : {};
  all[g.adapter.description] = tuningTable();
  await writeFileAtomic(TUNE_FILE, [new TextEncoder().encode(JSON.stringify(all, null, 1))]);

  const rows: Row[] = cases.map((c) => {
    const o = ours.get(c.id)!;
    const ms = median(o.ms);
    const pm = peer.get(c.id);
    const row: Row = { kernel: c.id, shape: fmtShape(c), variant: o.variant, ms, peer: pm ? 'tfjs-webgpu 4.22.0' : null, peer_ms: pm ? median(pm) : null, ...(o.note ? { note: o.note } : {}) };
    if ('flops' in c) row.gflops = c.flops / ms / 1e6;
    else row.gbps = c.bytes / ms / 1e6;
    return row;
  });
  const copy = rows.find((r) => r.kernel.startsWith('copy'));
  const lines = [
    `adapter: ${adapter}; FMA ceiling ${ceiling.toFixed(1)} GFLOP/s; ${rounds} round(s), median of ${reps} samples each; ${new Date().toISOString()}`,
    '',
    '| kernel | shape | variant | ms | GFLOP/s or GB/s | TF.js ms | speed-up vs TF.js |',
    '|---|---|---|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.kernel} | ${r.shape} | ${r.variant}${r.note ? ` (${r.note})` : ''} | ${r.ms.toFixed(1)} | ${r.gflops !== undefined ? `${r.gflops.toFixed(2)} GFLOP/s` : `${r.gbps!.toFixed(2)} GB/s${copy && r !== copy ? ` (${(r.gbps! / copy.gbps!).toFixed(2)}× the copy's GB/s)` : ''}`} | ${r.peer_ms !== null ? r.peer_ms.toFixed(1) : '—'} | ${r.peer_ms !== null ? `${(r.peer_ms / r.ms).toFixed(2)}×` : '—'} |`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const json = a.str('json');
  if (json) {
    await writeFileAtomic(json, [new TextEncoder().encode(JSON.stringify({ adapter, adapterInfo: g.adapter, fmaCeilingGflops: ceiling, date: new Date().toISOString(), rows }, null, 1))]);
    log(`wrote ${json}`);
  }
  await closeDevice();
  process.exit(0);
}

main().catch((e: Error) => { process.stderr.write(`bench: ${e.stack}\n`); process.exit(1); });
