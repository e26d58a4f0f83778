// The adapter's arithmetic ceiling: a kernel of register-only vec4 FMAs (no loads in the loop), timed, gives
// the FLOP rate no kernel can beat; the benchmarks report achieved GFLOP/s against it.
import { Tensor, keep } from '../engine/tensor.js';
import { uniforms, launch } from './util.js';
import { timeGpu } from './timing.js';
import type { Family } from './reference.js';

const ACC = 4, UNROLL = 8, WG = 64;

const ProbeUniforms = uniforms({ iters: 'u32', m: 'f32', c: 'f32' });

/** Lane i iterates a ← fma(a, m, c) on ACC vec4 accumulators and writes the sum of their components. */
const FMA_PROBE = /* wgsl */`
${ProbeUniforms.wgsl}
@group(0) @binding(1) var<storage, read_write> outp: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let m = vec4f(u.m); let c = vec4f(u.c);
  ${Array.from({ length: ACC }, (_, i) => `var a${i} = vec4f(f32(gid.x & 7u) * 1e-3 + ${i}.0 * 0.01, 0.1, 0.2, 0.3);`).join('\n  ')}
  for (var i = 0u; i < u.iters; i++) {
    ${Array.from({ length: UNROLL }, () => Array.from({ length: ACC }, (_, i) => `a${i} = fma(a${i}, m, c);`).join(' ')).join('\n    ')}
  }
  outp[gid.x] = dot(${Array.from({ length: ACC }, (_, i) => `a${i}`).join(' + ')}, vec4f(1.0));
}`;

export interface FmaProbe { workgroups: number; iters: number; m: number; c: number }

/** Runs the probe into `out` (one value per lane: workgroups·64). */
export function fmaProbe(out: Tensor, p: FmaProbe): void {
  launch('fmaProbe', FMA_PROBE, [out], [p.workgroups], ProbeUniforms.pack(p));
}

/** FLOPs of one probe dispatch (an FMA counts 2). */
export const fmaProbeFlops = (p: FmaProbe) => p.workgroups * WG * p.iters * UNROLL * ACC * 4 * 2;

/** Float64 value lane `lane` of the probe writes. */
export function fmaProbeReference(p: FmaProbe, lane: number): number {
  let s = 0;
  for (let i = 0; i < ACC; i++) {
    for (const a0 of [(lane & 7) * 1e-3 + i * 0.01, 0.1, 0.2, 0.3]) {
      let a = Math.fround(a0);
      for (let k = 0; k < p.iters * UNROLL; k++) a = a * Math.fround(p.m) + Math.fround(p.c);
      s += a;
    }
  }
  return s;
}

/** Register-only FMA throughput (GFLOP/s): the adapter's arithmetic ceiling. */
export async function fmaCeilingGflops(): Promise<number> {
  const p: FmaProbe = { workgroups: 256, iters: 512, m: 0.999, c: 1e-4 };
  const out = keep(Tensor.empty([p.workgroups * WG]));
  const ms = await timeGpu(() => fmaProbe(out, p), 3);
  out.dispose();
  return fmaProbeFlops(p) / ms / 1e6;
}

// ------------------------------------------------------------------------------------------ the family (kernels/registry.ts)
export const probeFamily: Family<FmaProbe> = {
  name: 'probe',
  file: 'kernels/probe.ts',
  variants: { fma: 'register-only vec4 FMAs: the arithmetic ceiling the benchmarks report' },
  unsupported: () => null,
  problems: () => [{ workgroups: 3, iters: 7, m: 0.999, c: 1e-4 }],
  describe: (p) => `${p.workgroups} workgroups × ${p.iters} iterations`,
  inputs: () => [],
  reference: (p) => [(lane: number) => fmaProbeReference(p, lane)],
  run: (p) => { const out = Tensor.empty([p.workgroups * WG]); fmaProbe(out, p); return [out]; },
  // f32 rounding over the chain of FMAs.
  tolerance: () => 1e-5,
};
