// The verification report: rows of (key, error, tolerance) comparing a port's outputs with a reference dump.
import type { Tensor } from '../engine/tensor.js';

export interface CheckRow {
  key: string; error: number; tolerance: number; pass: boolean; metric: 'rel' | 'abs';
  /** How many elements the comparison covered (a masked check that covers none fails). */
  elements: number;
  note?: string;
}
export interface VerifyReport { reference: string; kind: string; rows: CheckRow[]; pass: boolean; notes: string[] }

/** max|got − ref| / max|ref| (rel-to-max) or max|got − ref| (abs), over the elements `mask` selects. */
export function compare(got: ArrayLike<number>, ref: ArrayLike<number>, metric: 'rel' | 'abs' = 'rel', mask?: (i: number) => boolean): { error: number; elements: number } {
  let num = 0, den = 0, elements = 0;
  for (let i = 0; i < ref.length; i++) {
    if (mask && !mask(i)) continue;
    elements++;
    const d = Math.abs(got[i] - ref[i]);
    num = Number.isNaN(d) ? Infinity : Math.max(num, d);
    den = Math.max(den, Math.abs(ref[i]));
  }
  return { error: metric === 'abs' || den === 0 ? num : num / den, elements };
}

/** How many elements `mask` selects out of n. */
export function selected(n: number, mask: (i: number) => boolean): number {
  let k = 0;
  for (let i = 0; i < n; i++) if (mask(i)) k++;
  return k;
}

export class Report {
  rows: CheckRow[] = [];
  notes: string[] = [];
  add(key: string, got: ArrayLike<number>, ref: ArrayLike<number>, tolerance: number, metric: 'rel' | 'abs' = 'rel', note?: string, mask?: (i: number) => boolean): CheckRow {
    let row: CheckRow;
    if (got.length !== ref.length) row = { key, error: Infinity, tolerance, pass: false, metric, elements: 0, note: `length ${got.length} vs ${ref.length}` };
    else {
      const { error, elements } = compare(got, ref, metric, mask);
      row = elements === 0
        ? { key, error: NaN, tolerance, pass: false, metric, elements, note: `${note ? `${note}: ` : ''}the comparison selects no element` }
        : { key, error, tolerance, pass: error <= tolerance, metric, elements, ...(note ? { note } : {}) };
    }
    this.rows.push(row);
    return row;
  }
}

export async function f32(t: Tensor): Promise<Float32Array> { return (await t.data()) as Float32Array; }

export function dirOf(file: string): string { const i = file.lastIndexOf('/'); return i < 0 ? '.' : file.slice(0, i); }
