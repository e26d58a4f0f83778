// Kernel variant choices per adapter and shape: a default per adapter kind (CPU drivers: register-blocked;
// GPUs: workgroup-tiled) unless kernels/autotune.ts measured a better one and recorded it here.
import { gpu } from '../engine/device.js';
import type { DType } from '../engine/tensor.js';

export interface MatmulProblem {
  M: number; N: number; K: number; batch: number;
  transA: boolean; transB: boolean;
  strideA: number; strideB: number;
  dtA: DType; dtB: DType;
}

export function problemKey(p: MatmulProblem): string {
  return `${p.batch}x${p.M}x${p.N}x${p.K}${p.transA ? 'T' : 'N'}${p.transB ? 'T' : 'N'}${p.strideA ? '' : 'a'}${p.strideB ? '' : 'b'}${p.dtA}${p.dtB}`;
}

const table = new Map<string, string>();
let recording: Map<string, MatmulProblem> | null = null;

/** Register-blocked shapes worth trying on CPU drivers (rows per lane × shared columns). */
const RB_CANDIDATES = ['rb4x4', 'rb4x8', 'rb2x16', 'rb4x8g', 'rb4x16g', 'rb2x24g', 'rb3x16g', 'rb8x8g'];

export function candidates(p: MatmulProblem): string[] {
  const soft = gpu().adapter.isSoftware;
  const list = soft ? [...RB_CANDIDATES] : ['tiled128', 'tiled', 'rb4x4'];
  // The swapped problem (lanes along N) for short M.
  if (p.M < 256 || p.N < 64) list.push(...(soft ? ['rb4x8gs', 'rb4x16gs', 'rb4x8s'] : ['rb4x4s']));
  if (p.K >= 4 * Math.max(p.M, p.N)) list.push('splitk4', 'splitk16');
  else if (!soft) list.push('splitk4');
  return list;
}

export function defaultVariant(p: MatmulProblem): string {
  const g = gpu();
  if (g.adapter.isSoftware) {
    // Subgroup-shared loads when the adapter has subgroups (4× fewer load instructions on CPU drivers).
    const sg = g.hasSubgroups && g.adapter.subgroupMinSize >= 4 ? 'g' : '';
    // Lanes run along M (4 rows each, 64 per workgroup): for short M, run them along N instead.
    return p.M < 256 && p.N > p.M ? `rb4x8${sg}s` : `rb4x8${sg}`;
  }
  if (p.K >= 8 * Math.max(p.M, p.N) && p.M * p.N * p.batch < 65536) return 'splitk16';
  // Measured on an H100 (Dawn/Vulkan): the 64×64 tiles beat the 128×128 ones at DiT sizes.
  return 'tiled';
}

export function chooseMatmulVariant(p: MatmulProblem): string {
  const key = problemKey(p);
  if (recording && !recording.has(key)) recording.set(key, { ...p });
  return table.get(key) ?? defaultVariant(p);
}

/** The cached choices (problem key → variant), e.g. to persist between runs. */
export function tuningTable(): Record<string, string> {
  return Object.fromEntries(table);
}

export function loadTuningTable(t: Record<string, string>): void {
  for (const [k, v] of Object.entries(t)) table.set(k, v);
}

export function recordMatmulChoice(p: MatmulProblem, variant: string): void {
  table.set(problemKey(p), variant);
}

export function isTuned(p: MatmulProblem): boolean { return table.has(problemKey(p)); }

/** Records the matmul problems issued while `fn` runs (what `autotune` then times). */
export async function recordProblems(fn: () => unknown): Promise<MatmulProblem[]> {
  recording = new Map();
  try {
    await fn();
    return [...recording.values()];
  } finally {
    recording = null;
  }
}

// ------------------------------------------------------------------------------------------ attention
const attentionTable = new Map<string, 'flash' | 'unfused'>();
const attentionKey = (B: number, H: number, Tq: number, Tk: number, dh: number) => `attn ${B}x${H}x${Tq}x${Tk}x${dh}`;

/**
 * Fused or unfused attention for a shape: a tuned choice if one was recorded, else the adapter kind's
 * default (CPU drivers: fused, measured ~2× faster on llvmpipe; GPUs: unfused while the scores fit a
 * binding, measured faster on an H100), and always fused when the scores would not fit.
 */
export function chooseAttention(B: number, H: number, Tq: number, Tk: number, dh: number): 'flash' | 'unfused' {
  const g = gpu();
  if (dh % 4 !== 0 || dh > 128) return 'unfused';
  const tuned = attentionTable.get(attentionKey(B, H, Tq, Tk, dh));
  if (tuned) return tuned;
  const scoresFit = 4 * B * H * Tq * Tk <= g.maxBindingBytes / 2;
  if (!scoresFit) return 'flash';
  return g.adapter.isSoftware ? 'flash' : 'unfused';
}

export function recordAttentionChoice(B: number, H: number, Tq: number, Tk: number, dh: number, v: 'flash' | 'unfused'): void {
  attentionTable.set(attentionKey(B, H, Tq, Tk, dh), v);
}
