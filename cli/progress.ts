// Progress lines on stderr: a redrawn bar on a terminal, a line every ~10% otherwise (logs, CI); and the
// judge's preparation with its progress shown, as `dit eval` and the demo do it.
import { prepareJudge } from '../eval/judge.js';
import type { ImageDataset } from '../data/dataset.js';

/** Whether the user's stderr is a terminal (the `dit` command runs in a child whose stderr is a pipe). */
const stderrIsTty = process.env.DIT_STDERR_TTY ? process.env.DIT_STDERR_TTY === '1' : !!process.stderr.isTTY;

/**
 * One progress line. The time left is extrapolated from the work done since `start` (what this process
 * began at: a resumed run's earlier steps took no time here).
 */
export function progressLine(label: string, done: number, total: number, secs: number, start = 0, extra = ''): string {
  const pct = Math.floor((100 * done) / total);
  const left = done > start ? (secs / (done - start)) * (total - done) : 0;
  return `${label} ${done}/${total} (${pct}%) ${secs.toFixed(1)}s elapsed, ~${left.toFixed(0)}s left${extra ? `  ${extra}` : ''}`;
}

export class Progress {
  private lastPct = -1;
  private readonly t0 = performance.now();
  /** `start`: the count already done when this process began (a resumed run's step). */
  constructor(readonly label: string, readonly total: number, readonly start = 0) {}
  update(done: number, extra = ''): void {
    const pct = Math.floor((100 * done) / this.total);
    const line = progressLine(this.label, done, this.total, (performance.now() - this.t0) / 1000, this.start, extra);
    if (stderrIsTty) {
      const w = 24, fill = Math.round((w * done) / this.total);
      process.stderr.write(`\r[${'#'.repeat(fill)}${'.'.repeat(w - fill)}] ${line}\x1b[K${done === this.total ? '\n' : ''}`);
    } else if (pct >= this.lastPct + 10 || done === this.total) {
      this.lastPct = pct;
      process.stderr.write(`${line}\n`);
    }
  }
}

/** prepareJudge with progress bars for training the judge (when it must be) and judging the real test images. */
export async function prepareJudgeShown(dataName: string, data: { train: ImageDataset; test: ImageDataset }, o: { classifier?: string; retrain?: boolean; log?: (m: string) => void }): ReturnType<typeof prepareJudge> {
  let training: Progress | null = null;
  const judging = new Progress('judging the real test images', data.test.count);
  return prepareJudge(dataName, data, {
    file: o.classifier, retrain: o.retrain, log: o.log,
    onProgress: (step, steps, loss) => { (training ??= new Progress('training the judge', steps)).update(step, `loss ${loss.toFixed(3)}`); },
    onJudging: (n) => judging.update(n),
  });
}
