// Tuned variant choices, one table per adapter. Each tunable kernel family asks `tunedVariant(family, key)`
// when it dispatches; only a measurement (kernels/autotune.ts) or an explicitly loaded table puts a choice
// there, otherwise the family's own default applies. The table belongs to the device, so a choice made on
// one adapter never leaks to another, and stored tables are keyed by `adapterKey` (name and driver).
import { gpu, type Gpu, type AdapterSummary } from '../engine/device.js';

/**
 * What identifies an adapter for tuning: vendor, architecture, device and description (Dawn puts the driver
 * and its version there), and on lavapipe the vector width its shaders are compiled to (the same driver at
 * 256 and 512 bits favours different variants).
 */
export function adapterKey(a: AdapterSummary): string {
  return [a.vendor, a.architecture, a.device, a.description, a.vectorBits ? `${a.vectorBits}-bit` : ''].filter(Boolean).join(' | ');
}

/** Tables of several adapters, as persisted (e.g. `.cache/autotune.json`): adapter key → choice key → variant. */
export type StoredTuning = Record<string, Record<string, string>>;

const tables = new WeakMap<Gpu, Map<string, string>>();

function tableOf(g: Gpu): Map<string, string> {
  let t = tables.get(g);
  if (!t) tables.set(g, (t = new Map()));
  return t;
}

const choiceKey = (family: string, key: string) => `${family} ${key}`;

/** A problem a tunable family dispatched: what `autotune` times. */
export interface IssuedProblem { family: string; key: string; problem: unknown }

let recording: Map<string, IssuedProblem> | null = null;

/** The tuned variant of `family` for the problem `key` on this adapter, if one was measured or loaded. */
export function tunedVariant(family: string, key: string, problem: unknown): string | undefined {
  const id = choiceKey(family, key);
  if (recording && !recording.has(id)) recording.set(id, { family, key, problem });
  return tableOf(gpu()).get(id);
}

export function recordChoice(family: string, key: string, variant: string): void {
  tableOf(gpu()).set(choiceKey(family, key), variant);
}

export function isTuned(family: string, key: string): boolean {
  return tableOf(gpu()).has(choiceKey(family, key));
}

/** This adapter's choices ("family key" → variant). */
export function tuningTable(): Record<string, string> {
  return Object.fromEntries(tableOf(gpu()));
}

/** Adds choices ("family key" → variant) to this adapter's table. */
export function loadTuningTable(t: Record<string, string>): void {
  const table = tableOf(gpu());
  for (const [k, v] of Object.entries(t)) table.set(k, v);
}

/** Loads this adapter's entry of a stored set of tables; returns how many choices it had. */
export function loadStoredTuning(stored: StoredTuning): number {
  const mine = stored[adapterKey(gpu().adapter)] ?? {};
  loadTuningTable(mine);
  return Object.keys(mine).length;
}

/** The stored tables with this adapter's entry replaced by its current table (the others kept). */
export function storeTuning(stored: StoredTuning): StoredTuning {
  return { ...stored, [adapterKey(gpu().adapter)]: tuningTable() };
}

/** Runs `fn` and returns the tunable problems it dispatched (each once). */
export async function recordProblems(fn: () => unknown): Promise<IssuedProblem[]> {
  recording = new Map();
  try {
    await fn();
    return [...recording.values()];
  } finally {
    recording = null;
  }
}

/** Forgets this adapter's choices (the defaults apply again). */
export function clearTuningTable(): void {
  tableOf(gpu()).clear();
}
