// Progress lines on stderr: a redrawn bar on a terminal, a line every ~10% otherwise (logs, CI).

/** Whether the user's stderr is a terminal (the `dit` command runs in a child whose stderr is a pipe). */
const stderrIsTty = process.env.DIT_STDERR_TTY ? process.env.DIT_STDERR_TTY === '1' : !!process.stderr.isTTY;
export class Progress {
  private lastPct = -1;
  private readonly t0 = performance.now();
  constructor(readonly label: string, readonly total: number) {}
  update(done: number, extra = ''): void {
    const pct = Math.floor((100 * done) / this.total);
    const secs = (performance.now() - this.t0) / 1000;
    const eta = done > 0 ? (secs / done) * (this.total - done) : 0;
    const line = `${this.label} ${done}/${this.total} (${pct}%) ${secs.toFixed(1)}s elapsed, ~${eta.toFixed(0)}s left${extra ? `  ${extra}` : ''}`;
    if (stderrIsTty) {
      const w = 24, fill = Math.round((w * done) / this.total);
      process.stderr.write(`\r[${'#'.repeat(fill)}${'.'.repeat(w - fill)}] ${line}\x1b[K${done === this.total ? '\n' : ''}`);
    } else if (pct >= this.lastPct + 10 || done === this.total) {
      this.lastPct = pct;
      process.stderr.write(`${line}\n`);
    }
  }
}
