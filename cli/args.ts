// A small argument parser: --key value, --key=value, --flag, and positionals.
export class Args {
  constructor(readonly flags: Map<string, string | true>, readonly positional: string[]) {}
  has(k: string): boolean { return this.flags.has(k); }
  str(k: string): string | undefined { const v = this.flags.get(k); return typeof v === 'string' ? v : undefined; }
  num(k: string): number | undefined {
    const v = this.str(k);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`--${k} expects a number, got '${v}'`);
    return n;
  }
  bool(k: string): boolean { const v = this.flags.get(k); return v === true || v === 'true' || v === '1'; }
  list(k: string): number[] | undefined { return this.str(k)?.split(',').map((s) => { const n = Number(s); if (!Number.isFinite(n)) throw new Error(`--${k}: '${s}' is not a number`); return n; }); }
}

const BOOLEAN = new Set(['json', 'model', 'help', 'learn-sigma', 'quick', 'guide-all', 'fresh', 'ema', 'cosine', 'no-peer', 'no-tune', 'skip-timing']);

export function parseArgs(argv: string[]): Args {
  const flags = new Map<string, string | true>();
  const pos: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
      else if (BOOLEAN.has(a.slice(2)) || i + 1 >= argv.length || argv[i + 1].startsWith('--')) flags.set(a.slice(2), true);
      else flags.set(a.slice(2), argv[++i]);
    } else pos.push(a);
  }
  return new Args(flags, pos);
}
