// `node build/bench/loads.js [--reps 5] [--json FILE]`: what bounds the register-blocked matmuls on a CPU
// adapter. Two measurements:
//  1. The cost of one storage load against one FMA: a loop of FMAs alone, then the same loop with a few loads
//     of each kind (the same index for every lane, consecutive lanes, lanes far apart, a vec4, a 16-float struct,
//     workgroup memory); each load's time is the difference, per load instruction and per float it brings.
//  2. The default matmul kernel of the quick recipe's widest linear (1,024 × 128 · 128 × 512, as
//     kernels/matmul.ts generates it) beside copies of it whose per-lane operand loads, shared operand loads
//     or both are replaced by register values: what each kind of load costs the kernel.
// The copies in (2) compute wrong products on purpose and are timed, never used; the kernel they come from is
// checked against float64 by the registry (kernels/registry.ts) like every variant.
import { getDevice, closeDevice, describeAdapter, gpu } from '../engine/device.js';
import { Tensor, keep } from '../engine/tensor.js';
import { writeFileAtomic } from '../engine/node.js';
import { launch, uniforms } from '../kernels/util.js';
import { timeGpu } from '../kernels/timing.js';
import { rbKernel, MatmulUniforms, subgroupSize, parseVariant, defaultMatmulVariant, type KernelSpec, type MatmulProblem } from '../kernels/matmul.js';
import { parseOptions, intOption } from './options.js';

const USAGE = 'usage: node build/bench/loads.js [--reps 5] [--json FILE]';

// ------------------------------------------------------------------------------------------ 1. load cost
// 64 FMAs per iteration use every float that 4 loads of 16 floats bring.
const WG = 64, WORKGROUPS = 1024, ITERS = 64, ACC = 16, FMAS = 64, LOADS = 4, SPAN = 1 << 20;

const LoopUniforms = uniforms({ iters: 'u32', mask: 'u32' });

/** Each kind of load: the WGSL statement for load `j` of iteration `i`, the values it brings, floats per load. */
const LOAD_KINDS: { name: string; floats: number; load: (j: number) => string }[] = [
  { name: 'f32, the same index in every lane', floats: 1, load: (j) => `let v${j} = X[(i * ${LOADS}u + ${j}u) & u.mask];` },
  { name: 'f32, consecutive lanes', floats: 1, load: (j) => `let v${j} = X[(i * ${LOADS * WG}u + ${j * WG}u + lid.x) & u.mask];` },
  { name: 'f32, lanes 1,031 apart', floats: 1, load: (j) => `let v${j} = X[(lid.x * 1031u + i * ${LOADS}u + ${j}u) & u.mask];` },
  { name: 'vec4, lanes 1,032 floats apart', floats: 4, load: (j) => `let v${j} = X4[((lid.x * 1032u + i * ${LOADS * 4}u + ${j * 4}u) & u.mask) >> 2u];` },
  { name: '16-float struct, lanes 1,040 floats apart', floats: 16, load: (j) => `let v${j} = X16[((lid.x * 1040u + i * ${LOADS * 16}u + ${j * 16}u) & u.mask) >> 4u];` },
  { name: 'f32 from workgroup memory, consecutive lanes', floats: 1, load: (j) => `let v${j} = W[(i * ${LOADS}u + ${j}u + lid.x) & 4095u];` },
];

/** The f32 values load `j` of a kind brings (every one is used, so the compiler loads them all). */
function valuesOf(floats: number, j: number): string[] {
  if (floats === 1) return [`v${j}`];
  if (floats === 4) return [0, 1, 2, 3].map((c) => `v${j}[${c}]`);
  return Array.from({ length: 16 }, (_, f) => `v${j}.v[${f >> 2}][${f & 3}]`);
}

/** LOADS loads of `kind`, then FMAS FMAs into ACC accumulators using every loaded value, ITERS times per lane (no kind: the FMAs alone). */
function loadLoop(kind: (typeof LOAD_KINDS)[number] | null): string {
  const loads = kind ? Array.from({ length: LOADS }, (_, j) => kind.load(j)) : [];
  const values = kind ? Array.from({ length: LOADS }, (_, j) => valuesOf(kind.floats, j)).flat() : ['m'];
  return /* wgsl */`
${LoopUniforms.wgsl}
struct Floats16 { v: array<vec4f, 4> }
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> X4: array<vec4f>;
@group(0) @binding(3) var<storage, read> X16: array<Floats16>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
var<workgroup> W: array<f32, 4096>;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(global_invocation_id) gid: vec3u) {
  let m = 0.999;
  ${Array.from({ length: ACC }, (_, a) => `var a${a} = f32(lid.x) + ${a}.0;`).join(' ')}
  for (var i = 0u; i < u.iters; i++) {
    ${loads.join('\n    ')}
    ${Array.from({ length: FMAS }, (_, t) => `a${t % ACC} = fma(${values[t % values.length]}, m, a${t % ACC});`).join('\n    ')}
  }
  out[gid.x] = ${Array.from({ length: ACC }, (_, a) => `a${a}`).join(' + ')};
}`;
}

interface LoadCost { kind: string; floats: number; nsPerLoad: number; nsPerFloat: number; fmasPerLoad: number }

async function loadCosts(reps: number): Promise<{ nsPerFma: number; kinds: LoadCost[] }> {
  const src = keep(Tensor.empty([SPAN])), out = keep(Tensor.empty([WORKGROUPS * WG]));
  const lanes = WORKGROUPS * WG * ITERS;
  const time = (code: string) => timeGpu(() => launch('loadCost', code, [src, src, src, out], [WORKGROUPS], LoopUniforms.pack({ iters: ITERS, mask: SPAN - 1 })), reps);
  try {
    const fmaOnly = await time(loadLoop(null));
    const nsPerFma = (fmaOnly * 1e6) / (lanes * FMAS);
    const kinds: LoadCost[] = [];
    for (const kind of LOAD_KINDS) {
      const ms = await time(loadLoop(kind));
      const nsPerLoad = ((ms - fmaOnly) * 1e6) / (lanes * LOADS);
      kinds.push({ kind: kind.name, floats: kind.floats, nsPerLoad, nsPerFloat: nsPerLoad / kind.floats, fmasPerLoad: nsPerLoad / nsPerFma });
    }
    return { nsPerFma, kinds };
  } finally {
    src.dispose(); out.dispose();
  }
}

// ------------------------------------------------------------------------------------------ 2. the matmul without its loads

/** Replaces every match of `re` in the kernel's source, and fails when there is none (the generator changed). */
function without(code: string, re: RegExp, by: string, what: string): string {
  const out = code.replace(re, by);
  if (out === code) throw new Error(`bench/loads: the matmul kernel no longer has ${what} where this benchmark looks (${re})`);
  return out;
}

interface Ablation { kernel: string; ms: number; gflops: number }

async function matmulAblation(reps: number): Promise<{ problem: string; variant: string; rows: Ablation[] }> {
  // The forward of the quick model's fc1: x [1,024, 128] · Wᵀ (W [512, 128]).
  const M = 1024, N = 512, K = 128;
  const pr: MatmulProblem = { M, N, K, batch: 1, transA: false, transB: true, strideA: 0, strideB: 0, dtA: 'f32', dtB: 'f32' };
  const variant = defaultMatmulVariant(pr);
  const v = parseVariant(variant);
  if (v.kind !== 'rb' || v.swap) throw new Error(`bench/loads: expects a register-blocked default on this adapter, got ${variant}`);
  const sg = v.sg ? subgroupSize() : 0;
  const spec: KernelSpec = { tX: false, tY: true, tD: false, vecX: true, vecY: true, vecD: false, dtX: 'f32', dtY: 'f32', bias: false, act: null, residual: false, savePre: false };
  const full = rbKernel(spec, v.R, v.C, WG, sg);
  // Per-lane operand: `let xrR = X4[…];` (R rows per lane); shared operand: `let ldT = Y4[…];` with subgroups,
  // `let ycC = Y4[…];` without.
  const lane = (c: string) => without(c, /let xr(\d+) = X4\[[^\n]*;/g, 'let xr$1 = vec4f(f32(k), f32(lid.x), 1.0, 2.0);', 'per-lane X4 loads');
  const shared = (c: string) => without(c, sg ? /let ld(\d+) = Y4\[[^\n]*;/g : /let yc(\d+) = Y4\[[^\n]*;/g, sg ? 'let ld$1 = vec4f(f32(sgid), 1.0, 2.0, f32(k));' : 'let yc$1 = vec4f(f32(k), 1.0, 2.0, 3.0);', 'shared Y4 loads');
  const kernels: [string, string][] = [
    ['as generated', full],
    ['per-lane operand (x) from registers', lane(full)],
    ['shared operand (W) from registers', shared(full)],
    ['both from registers (FMAs, broadcasts and stores)', lane(shared(full))],
  ];
  const x = keep(Tensor.empty([M * K])), w = keep(Tensor.empty([N * K])), d = keep(Tensor.empty([M * N]));
  const params = MatmulUniforms.pack({ P: M, Q: N, K, batch: 1, ldx: K, ldy: K, ldd: N, nsplit: 1, sx: 0, sy: 0, sd: M * N, kchunk: K, alpha: 1 });
  try {
    const rows: Ablation[] = [];
    for (const [kernel, code] of kernels) {
      const ms = await timeGpu(() => launch('matmulAblation', code, [x, w, x, w, d], [Math.ceil(N / v.C), Math.ceil(M / (WG * v.R)), 1], params), reps);
      rows.push({ kernel, ms, gflops: (2 * M * N * K) / ms / 1e6 });
    }
    return { problem: `${M}×${K} · (${N}×${K})ᵀ`, variant, rows };
  } finally {
    x.dispose(); w.dispose(); d.dispose();
  }
}

async function main(): Promise<void> {
  const a = parseOptions({ reps: { type: 'string' }, json: { type: 'string' } }, USAGE);
  const reps = intOption(a, 'reps', USAGE) ?? 5;
  await getDevice();
  const adapter = describeAdapter(gpu().adapter);
  console.log(`adapter: ${adapter}; medians of ${reps} samples after a warm-up`);
  const loads = await loadCosts(reps);
  console.log(`\none FMA: ${loads.nsPerFma.toFixed(4)} ns per lane (${(2 / loads.nsPerFma).toFixed(1)} GFLOP/s)\n`);
  console.log(`${'load'.padEnd(46)} ns per load  ns per float  FMAs per load`);
  for (const k of loads.kinds) console.log(`${k.kind.padEnd(46)} ${k.nsPerLoad.toFixed(3).padStart(11)}  ${k.nsPerFloat.toFixed(3).padStart(12)}  ${k.fmasPerLoad.toFixed(0).padStart(13)}`);
  const mm = await matmulAblation(reps);
  console.log(`\nmatmul ${mm.problem}, ${mm.variant} (the default here):`);
  for (const r of mm.rows) console.log(`  ${r.kernel.padEnd(52)} ${r.ms.toFixed(2).padStart(7)} ms  ${r.gflops.toFixed(1).padStart(6)} GFLOP/s`);
  if (a.json) await writeFileAtomic(a.json, [new TextEncoder().encode(JSON.stringify({ adapter, date: new Date().toISOString(), reps, loads, matmul: mm }, null, 1))]);
  await closeDevice();
}

await main();
