// Learning curves: the quality of a run's snapshots as `dit eval` scores samples — the judge's accuracy and
// the Fréchet distance — against training compute (multiply-adds, as the paper counts them), images seen and
// minutes, with the floor (real images) and the VAE's ceiling (its reconstructions) drawn beside them.
// Recipes are compared by these curves, not by a single point.
import type { ChartConfiguration } from 'chart.js';
import { chartConfig, type Series } from '../data/plot.js';

export interface CurvePoint {
  step: number;
  images: number;
  /** Training multiply-adds up to this step. */
  multiplyAdds: number;
  /** Training time up to this step (null when unknown). */
  minutes: number | null;
  accuracy: number;
  frechet: number;
}

export interface Curve {
  /** What the curve is of (a run folder, a recipe). */
  label: string;
  points: CurvePoint[];
  /** The Fréchet distance of real images at the samples' count. */
  floor: number;
  /** The VAE's reconstructions of the floor's images, scored the same way (null when not measured). */
  ceiling: { accuracy: number; frechet: number } | null;
}

const COLORS = ['rgb(20, 40, 180)', 'rgb(200, 60, 20)', 'rgb(30, 140, 60)', 'rgb(140, 40, 160)', 'rgb(120, 120, 20)', 'rgb(20, 140, 160)'];

/** Accuracy and Fréchet distance against training compute (teramultiply-adds), one series per curve; floor and ceiling as flat lines. */
export function curveCharts(curves: Curve[]): [ChartConfiguration, ChartConfiguration] {
  const tera = (p: CurvePoint) => p.multiplyAdds / 1e12;
  const span = curves.flatMap((c) => c.points.map(tera));
  const [lo, hi] = [Math.min(...span), Math.max(...span)];
  const flat = (label: string, y: number, color: string): Series => ({ label, points: [{ x: lo, y }, { x: hi, y }], color, dashed: true, line: true, width: 1.5 });
  const series = (y: (p: CurvePoint) => number) => curves.map((c, i): Series => ({ label: c.label, points: c.points.map((p) => ({ x: tera(p), y: y(p) })), color: COLORS[i % COLORS.length], showPoints: true, width: 2 }));
  const first = curves[0];
  const ceilings = curves.filter((c) => c.ceiling);
  const accuracy = chartConfig({
    title: 'accuracy of the samples (the judge) against training compute', x: { label: 'training multiply-adds (×10¹²)' }, y: { label: 'accuracy' },
    series: [...series((p) => p.accuracy), ...(ceilings.length ? [flat('the VAE\'s ceiling', ceilings[0].ceiling!.accuracy, 'rgb(120, 120, 120)')] : [])],
  });
  Object.assign(accuracy.options!.scales!.y!, { min: 0, max: 1 });
  const frechet = chartConfig({
    title: 'Fréchet distance of the samples against training compute', x: { label: 'training multiply-adds (×10¹²)' }, y: { label: 'Fréchet distance (log)', log: true },
    series: [
      ...series((p) => p.frechet),
      flat('floor (real images)', first.floor, 'rgb(0, 0, 0)'),
      ...(ceilings.length ? [flat('the VAE\'s ceiling', ceilings[0].ceiling!.frechet, 'rgb(120, 120, 120)')] : []),
    ],
  });
  return [accuracy, frechet];
}

/** The curve as a table (markdown): one row per point. */
export function curveTable(c: Curve): string {
  const rows = c.points.map((p) => `| ${p.step.toLocaleString('en-US')} | ${p.images.toLocaleString('en-US')} | ${(p.multiplyAdds / 1e12).toFixed(2)} | ${p.minutes === null ? '' : p.minutes.toFixed(1)} | ${(100 * p.accuracy).toFixed(1)}% | ${p.frechet.toFixed(2)} (${(p.frechet / c.floor).toFixed(1)}×) |`);
  return ['| step | images | ×10¹² multiply-adds | minutes | accuracy | Fréchet (× floor) |', '|---:|---:|---:|---:|---:|---:|', ...rows].join('\n');
}
