// Noise schedules, timestep respacing and the derived per-timestep tables, in float64 on the CPU exactly as
// the official GaussianDiffusion / SpacedDiffusion compute them (DIT_SPEC S6.2, S6.3, S6.11, S6.12).

export type ScheduleName = 'linear' | 'cosine';

/** Base betas: linear (1e-4 … 0.02 scaled to the step count, the DiT default) or improved-DDPM cosine. */
export function betasFor(name: ScheduleName, steps = 1000): Float64Array {
  if (name === 'linear') {
    const scale = 1000 / steps;
    const lo = scale * 1e-4, hi = scale * 0.02;
    // numpy.linspace(lo, hi, steps): lo + i·step, the last entry exactly hi.
    const out = new Float64Array(steps);
    const step = (hi - lo) / (steps - 1);
    for (let i = 0; i < steps; i++) out[i] = i === steps - 1 ? hi : lo + i * step;
    return out;
  }
  const alphaBar = (t: number) => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
  const out = new Float64Array(steps);
  for (let i = 0; i < steps; i++) out[i] = Math.min(1 - alphaBar((i + 1) / steps) / alphaBar(i / steps), 0.999);
  return out;
}

/** Python's round(): half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * `space_timesteps(numTimesteps, sectionCounts)`: "250", "10,15,20" or "ddim50" → the sorted kept steps.
 * Python semantics: float stride accumulation and banker's rounding.
 */
export function spaceTimesteps(numTimesteps: number, sectionCounts: string | number[]): number[] {
  if (typeof sectionCounts === 'string') {
    if (sectionCounts.startsWith('ddim')) {
      const desired = parseInt(sectionCounts.slice(4), 10);
      for (let i = 1; i < numTimesteps; i++) {
        if (Math.ceil(numTimesteps / i) === desired) return Array.from({ length: desired }, (_, k) => k * i);
      }
      throw new Error(`cannot create exactly ${desired} steps with an integer stride (respacing '${sectionCounts}')`);
    }
    if (sectionCounts.trim() === '') return Array.from({ length: numTimesteps }, (_, i) => i);
    sectionCounts = sectionCounts.split(',').map((s) => {
      const n = Number(s);
      if (!Number.isInteger(n) || n <= 0) throw new Error(`bad respacing '${sectionCounts}': '${s}' is not a positive integer`);
      return n;
    });
  }
  const counts = sectionCounts;
  const sizePer = Math.floor(numTimesteps / counts.length);
  const extra = numTimesteps % counts.length;
  let start = 0;
  const all: number[] = [];
  counts.forEach((count, i) => {
    const size = sizePer + (i < extra ? 1 : 0);
    if (size < count) throw new Error(`cannot divide a section of ${size} steps into ${count}`);
    const stride = count <= 1 ? 1 : (size - 1) / (count - 1);
    let cur = 0;
    for (let k = 0; k < count; k++) {
      all.push(start + roundHalfEven(cur));
      cur += stride;
    }
    start += size;
  });
  return [...new Set(all)].sort((a, b) => a - b);
}

/** Every float64 table GaussianDiffusion derives from its betas. */
export interface DiffusionTables {
  numTimesteps: number;
  betas: Float64Array;
  alphasCumprod: Float64Array;
  alphasCumprodPrev: Float64Array;
  alphasCumprodNext: Float64Array;
  sqrtAlphasCumprod: Float64Array;
  sqrtOneMinusAlphasCumprod: Float64Array;
  logOneMinusAlphasCumprod: Float64Array;
  sqrtRecipAlphasCumprod: Float64Array;
  sqrtRecipm1AlphasCumprod: Float64Array;
  posteriorVariance: Float64Array;
  posteriorLogVarianceClipped: Float64Array;
  posteriorMeanCoef1: Float64Array;
  posteriorMeanCoef2: Float64Array;
  /** Original step index of each (spaced) step: what the model receives. */
  timestepMap: number[];
}

export function tablesFromBetas(betas: Float64Array, timestepMap?: number[]): DiffusionTables {
  const T = betas.length;
  const f = (g: (i: number) => number) => Float64Array.from({ length: T }, (_, i) => g(i));
  const ac = new Float64Array(T);
  let prod = 1;
  for (let i = 0; i < T; i++) { prod *= 1 - betas[i]; ac[i] = prod; }
  const acPrev = f((i) => (i === 0 ? 1 : ac[i - 1]));
  const acNext = f((i) => (i === T - 1 ? 0 : ac[i + 1]));
  const pv = f((i) => (betas[i] * (1 - acPrev[i])) / (1 - ac[i]));
  return {
    numTimesteps: T,
    betas,
    alphasCumprod: ac,
    alphasCumprodPrev: acPrev,
    alphasCumprodNext: acNext,
    sqrtAlphasCumprod: f((i) => Math.sqrt(ac[i])),
    sqrtOneMinusAlphasCumprod: f((i) => Math.sqrt(1 - ac[i])),
    logOneMinusAlphasCumprod: f((i) => Math.log(1 - ac[i])),
    sqrtRecipAlphasCumprod: f((i) => Math.sqrt(1 / ac[i])),
    sqrtRecipm1AlphasCumprod: f((i) => Math.sqrt(1 / ac[i] - 1)),
    posteriorVariance: pv,
    // log of [pv_1, pv_1, pv_2, …]: the t = 0 entry (0) is replaced by pv_1.
    posteriorLogVarianceClipped: f((i) => Math.log(T > 1 ? (i === 0 ? pv[1] : pv[i]) : pv[0])),
    posteriorMeanCoef1: f((i) => (betas[i] * Math.sqrt(acPrev[i])) / (1 - ac[i])),
    posteriorMeanCoef2: f((i) => ((1 - acPrev[i]) * Math.sqrt(1 - betas[i])) / (1 - ac[i])),
    timestepMap: timestepMap ?? Array.from({ length: T }, (_, i) => i),
  };
}

/** SpacedDiffusion: base schedule, kept steps → respaced betas (1 − ᾱ_s / ᾱ_prev) and their tables. */
export function spacedTables(baseBetas: Float64Array, useTimesteps: number[]): DiffusionTables {
  const base = tablesFromBetas(baseBetas);
  const keep = new Set(useTimesteps);
  const betas: number[] = [];
  const map: number[] = [];
  let last = 1;
  base.alphasCumprod.forEach((a, i) => {
    if (keep.has(i)) { betas.push(1 - a / last); last = a; map.push(i); }
  });
  return tablesFromBetas(Float64Array.from(betas), map);
}

/** `create_diffusion(respacing, noise_schedule, diffusion_steps)`'s tables. */
export function createTables(respacing = '', schedule: ScheduleName = 'linear', steps = 1000): DiffusionTables {
  const betas = betasFor(schedule, steps);
  return spacedTables(betas, spaceTimesteps(steps, respacing === '' ? [steps] : respacing));
}
