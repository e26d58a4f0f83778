// Typed options for the `dit` commands, declared once with commander: the declaration gives parsing,
// validation (numbers, ranges, choices, lists, files that must exist) and `--help`. A bad value is a usage
// error naming the option and what it allows; it happens before any GPU work.
import { existsSync } from 'node:fs';
import { Command, Option, InvalidArgumentError } from 'commander';
import { parseDataSpec, DATA_SPEC_HELP, type DataSpec } from '../data/readers.js';

function parseNumber(v: string, what: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`'${v}' is not a number (${what}).`);
  return n;
}

/** An integer option within [min, max]. */
export function int(flags: string, description: string, o: { min?: number; max?: number; def?: number } = {}): Option {
  const lo = o.min ?? -Infinity, hi = o.max ?? Infinity;
  const what = `an integer${lo > -Infinity ? ` ≥ ${lo}` : ''}${hi < Infinity ? ` and ≤ ${hi}` : ''}`;
  const opt = new Option(flags, description).argParser((v: string) => {
    const n = parseNumber(v, `expected ${what}`);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new InvalidArgumentError(`'${v}' is not ${what}.`);
    return n;
  });
  return o.def === undefined ? opt : opt.default(o.def);
}

/** A real-number option within [min, max] (exclusive lower bound with `above`). */
export function num(flags: string, description: string, o: { min?: number; above?: number; max?: number; def?: number } = {}): Option {
  const what = `a number${o.above !== undefined ? ` > ${o.above}` : o.min !== undefined ? ` ≥ ${o.min}` : ''}${o.max !== undefined ? ` and ≤ ${o.max}` : ''}`;
  const opt = new Option(flags, description).argParser((v: string) => {
    const n = parseNumber(v, `expected ${what}`);
    if ((o.min !== undefined && n < o.min) || (o.above !== undefined && n <= o.above) || (o.max !== undefined && n > o.max)) throw new InvalidArgumentError(`'${v}' is not ${what}.`);
    return n;
  });
  return o.def === undefined ? opt : opt.default(o.def);
}

/** One of a fixed set of values. */
export function choice<T extends string>(flags: string, description: string, choices: readonly T[], def?: T): Option {
  const opt = new Option(flags, description).choices(choices as readonly string[]);
  return def === undefined ? opt : opt.default(def);
}

/** A comma-separated list of non-negative integers. */
export function intList(flags: string, description: string): Option {
  return new Option(flags, description).argParser((v: string) => v.split(',').map((s) => {
    const n = Number(s);
    if (s.trim() === '' || !Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`'${s}' in '${v}' is not a non-negative integer.`);
    return n;
  }));
}

/** A path that must exist when the command starts. */
export function existing(flags: string, description: string): Option {
  return new Option(flags, description).argParser((v: string) => {
    if (!existsSync(v)) throw new InvalidArgumentError(`${v}: no such file or folder.`);
    return v;
  });
}

/** `--data`: the dataset spec, parsed. */
export function dataOption(def = 'synthetic'): Option {
  return new Option('--data <spec>', `dataset: ${DATA_SPEC_HELP}`).default(parseDataSpec(def), def).argParser((v: string) => {
    try { return parseDataSpec(v); } catch (e) { throw new InvalidArgumentError((e as Error).message); }
  });
}

export type { DataSpec };

/** Adds the usage examples shown at the end of `--help` (and run by the CLI tests). */
export function examples(cmd: Command, lines: string[]): Command {
  EXAMPLES.set(cmd, lines);
  return cmd.addHelpText('after', `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`);
}

/** Every command's examples, for `dit help` and the tests. */
export const EXAMPLES = new Map<Command, string[]>();

/** The adapter and other progress go to stderr; results to stdout. */
export const log = (m: string): void => { process.stderr.write(`${m}\n`); };

/** A usage error found after parsing (bad combinations of options): exit code 2, like commander's own. */
export class UsageError extends Error {}

/** Runs `f`, turning its errors into usage errors (for validation that happens after parsing). */
export function usage<T>(f: () => T): T {
  try { return f(); } catch (e) { throw new UsageError((e as Error).message); }
}
