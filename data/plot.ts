// Plots with Chart.js: the chart configurations (training loss, benchmark scaling) are plain data usable in
// a browser canvas as they are; `renderChartPng` draws one in Node on @napi-rs/canvas and writes a PNG.
import type { ChartConfiguration } from 'chart.js';
import { nodeHelpers, nodePackage } from '../engine/runtime.js';

export interface Series { label: string; points: { x: number; y: number }[]; color: string; width?: number; dashed?: boolean; showPoints?: boolean; /** Draw as a line even in a scatter chart. */ line?: boolean }

/** Exponential moving average of `ys` (weight `alpha` on the new value), for smoothed curves. */
export function smooth(ys: number[], alpha = 0.05): number[] {
  let m = NaN;
  return ys.map((y) => (m = Number.isNaN(m) ? y : m + alpha * (y - m)));
}

/** A line or scatter chart of several series, each axis linear or logarithmic. */
/**
 * A line or scatter chart of several series, each axis linear or logarithmic; `pointLabels[i][j]` is written
 * beside point j of series i.
 */
export function chartConfig(o: { title: string; x: { label: string; log?: boolean }; y: { label: string; log?: boolean }; series: Series[]; scatter?: boolean; pointLabels?: string[][] }): ChartConfiguration {
  const labels = o.pointLabels;
  return {
    type: o.scatter ? 'scatter' : 'line',
    data: {
      datasets: o.series.map((s) => ({
        label: s.label, data: s.points, borderColor: s.color, backgroundColor: s.color, borderWidth: s.width ?? 1.5,
        pointRadius: s.line ? 0 : s.showPoints || o.scatter ? 4 : 0, borderDash: s.dashed ? [6, 4] : [], showLine: !o.scatter || !!s.line,
      })),
    },
    plugins: labels ? [{
      id: 'pointLabels',
      afterDatasetsDraw: (chart) => {
        const ctx = chart.ctx;
        ctx.save();
        ctx.font = '11px sans-serif';
        ctx.fillStyle = '#333';
        chart.data.datasets.forEach((_, i) => chart.getDatasetMeta(i).data.forEach((pt, j) => { const t = labels[i]?.[j]; if (t) ctx.fillText(t, pt.x + 6, pt.y - 6); }));
        ctx.restore();
      },
    }] : [],
    options: {
      animation: false, responsive: false, parsing: false,
      scales: {
        x: { type: o.x.log ? 'logarithmic' : 'linear', title: { display: true, text: o.x.label } },
        y: { type: o.y.log ? 'logarithmic' : 'linear', title: { display: true, text: o.y.label } },
      },
      plugins: { title: { display: true, text: o.title }, legend: { display: true } },
    },
  };
}

/** The training-loss picture: loss per logged step (log scale), raw and smoothed. */
export function lossChart(points: { step: number; loss: number }[], title = 'DiT training loss'): ChartConfiguration {
  const ok = points.filter((p) => Number.isFinite(p.loss) && p.loss > 0);
  const sm = smooth(ok.map((p) => p.loss), Math.min(1, 20 / Math.max(20, ok.length)));
  return chartConfig({
    title, x: { label: 'step' }, y: { label: 'loss (MSE + VLB)', log: true },
    series: [
      { label: 'loss', points: ok.map((p) => ({ x: p.step, y: p.loss })), color: 'rgba(90, 110, 230, 0.45)', width: 1 },
      { label: 'smoothed', points: ok.map((p, i) => ({ x: p.step, y: sm[i] })), color: 'rgb(20, 40, 180)', width: 2.5 },
    ],
  });
}

/** Draws `config` at width×height on a white background and writes it as a PNG (Node; atomic). */
export async function renderChartPng(config: ChartConfiguration, file: string, width = 900, height = 450): Promise<void> {
  await renderChartsPng([config], file, width, height);
}

/** Several charts side by side, each width×height, in one PNG (Node; atomic). */
export async function renderChartsPng(configs: ChartConfiguration[], file: string, width = 900, height = 450): Promise<void> {
  // Node-only modules through engine/runtime.ts, so a browser bundle that draws lossChart() never pulls them in.
  const [{ createCanvas }, chartjs, { writeFileAtomic }] = await Promise.all([nodePackage<typeof import('@napi-rs/canvas')>('@napi-rs/canvas', 'renderChartsPng'), import('chart.js'), nodeHelpers('renderChartsPng')]);
  const { Chart, registerables } = chartjs;
  Chart.register(...registerables);
  const white = { id: 'white', beforeDraw: (c: { ctx: CanvasRenderingContext2D; width: number; height: number }) => { c.ctx.save(); c.ctx.fillStyle = 'white'; c.ctx.fillRect(0, 0, c.width, c.height); c.ctx.restore(); } };
  const sheet = createCanvas(width * configs.length, height);
  const sctx = sheet.getContext('2d');
  for (const [i, config] of configs.entries()) {
    const canvas = createCanvas(width, height);
    const chart = new Chart(canvas.getContext('2d') as unknown as CanvasRenderingContext2D, { ...config, plugins: [...(config.plugins ?? []), white] } as ChartConfiguration);
    sctx.drawImage(canvas, i * width, 0);
    chart.destroy();
  }
  const png = await sheet.encode('png');
  await writeFileAtomic(file, [new Uint8Array(png.buffer, png.byteOffset, png.byteLength)]);
}
