// The autotuner: runs a function once to record the problems it gives the tunable families (those with
// alternatives in kernels/registry.ts: matmul, attention, layernorm, conv2d), then for each problem checks
// every candidate variant against the float64 reference on random inputs, times those that pass and records
// the fastest in this adapter's table (kernels/tuning.ts). A candidate that throws or disagrees with the
// reference is reported and excluded.
import { timeGpu } from './timing.js';
import { family, prepare, runForced, outputError, type Family } from './registry.js';
import { isTuned, recordChoice, recordProblems, type IssuedProblem } from './tuning.js';

export { timeGpu } from './timing.js';

export interface TuneResult {
  family: string;
  key: string;
  problem: unknown;
  /** The fastest candidate that passed, now recorded for this adapter. */
  variant: string;
  /** Milliseconds per call of each candidate that passed. */
  ms: Record<string, number>;
  /** Candidates that threw or disagreed with the reference, and why (excluded). */
  failed: Record<string, string>;
  /** Candidates that do not apply to this problem on this adapter, and why. */
  skipped: Record<string, string>;
}

export interface TuneOptions {
  reps?: number;
  /** The candidates to time instead of the family's own list. */
  candidates?: string[];
  onProgress?: (msg: string) => void;
}

/**
 * Checks and times each candidate variant of one problem on random inputs, records the fastest that matches
 * the float64 reference, and returns what it measured. Throws when no candidate passes.
 */
export async function tuneProblem(issued: IssuedProblem, opts: TuneOptions = {}, f: Family<unknown> = family(issued.family)): Promise<TuneResult> {
  const p = issued.problem;
  const res: TuneResult = { family: f.name, key: issued.key, problem: p, variant: '', ms: {}, failed: {}, skipped: {} };
  const x = prepare(f, p);
  try {
    const refs = f.reference(p, x.host.map((h) => h.data));
    for (const v of opts.candidates ?? f.candidates?.(p) ?? Object.keys(f.variants)) {
      try {
        const why = f.unsupported(v, p);
        if (why) { res.skipped[v] = why; continue; }
        const got = await runForced(f, p, v, x);
        const worst = Math.max(...got.map((g, k) => outputError(g, refs[k]).error));
        if (!(worst <= f.tolerance(p))) {
          res.failed[v] = `rel-to-max error ${worst.toExponential(2)} against float64 is over ${f.tolerance(p)}`;
          continue;
        }
        res.ms[v] = await timeGpu(() => { f.run(p, x.tensors, v); }, opts.reps ?? 3);
      } catch (e) {
        res.failed[v] = (e as Error).message;
      }
    }
  } finally {
    x.dispose();
  }
  for (const [v, why] of Object.entries(res.failed)) opts.onProgress?.(`autotune ${f.name} ${issued.key}: ${v} excluded: ${why}`);
  const ranked = Object.entries(res.ms).sort((a, b) => a[1] - b[1]);
  if (!ranked.length) throw new Error(`autotune ${f.name} ${issued.key}: no candidate passed (${Object.entries({ ...res.failed, ...res.skipped }).map(([v, why]) => `${v}: ${why}`).join('; ')})`);
  res.variant = ranked[0][0];
  recordChoice(f.name, issued.key, res.variant);
  opts.onProgress?.(`autotune ${f.name} ${issued.key}: ${res.variant} (${ranked.map(([v, ms]) => `${v} ${ms.toFixed(2)}`).join(', ')} ms)`);
  return res;
}

/**
 * Runs `fn` once to record the tunable problems it issues, then tunes each one this adapter has no choice
 * for yet (see `tuneProblem`), and returns what it measured.
 */
export async function autotune(fn: () => unknown, opts: TuneOptions = {}): Promise<TuneResult[]> {
  const results: TuneResult[] = [];
  for (const issued of await recordProblems(fn)) {
    if (isTuned(issued.family, issued.key)) continue;
    results.push(await tuneProblem(issued, opts));
  }
  return results;
}
