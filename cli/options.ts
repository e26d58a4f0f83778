// Typed options for the `dit` commands, declared once with commander: the declaration gives parsing,
// validation (numbers, ranges, choices, lists, files that must exist) and `--help`. A bad value is a usage
// error naming the option and what it allows; it happens before any GPU work. So do an unknown flag (said
// first, with the closest known one) and an output that would destroy an input (checkOutputs).
import { accessSync, constants, existsSync, realpathSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { Command, Option, InvalidArgumentError } from 'commander';
import { parseDataSpec, DATA_SPEC_HELP, type DataSpec } from '../data/readers.js';
import { OFFICIAL_SAMPLING, SAMPLER_NAMES, type Sampling } from '../diffusion/sample.js';

function parseNumber(v: string, what: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`'${v}' is not a number (${what}).`);
  return n;
}

/** Upper bounds of counts that would otherwise run for ages or exhaust memory before failing (`--steps 1e99`). */
export const LIMITS = { steps: 10_000_000, batch: 4096, seed: 2 ** 32 - 1, perClass: 10_000, images: 100_000_000, width: 8192, depth: 256, heads: 256, patch: 64, seconds: 86_400 };

/** An integer option within [min, max] (every integer option has an upper bound: LIMITS). */
export function int(flags: string, description: string, o: { min?: number; max: number; def?: number }): Option {
  const lo = o.min ?? -Infinity, hi = o.max;
  const what = `an integer${lo > -Infinity ? ` ≥ ${lo} and` : ''} ≤ ${hi}`;
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

/** A comma-separated list of integers within [min, max]. */
export function intList(flags: string, description: string, o: { min: number; max: number }): Option {
  return new Option(flags, description).argParser((v: string) => v.split(',').map((s) => {
    const n = Number(s);
    if (s.trim() === '' || !Number.isInteger(n) || n < o.min || n > o.max) throw new InvalidArgumentError(`'${s}' in '${v}' is not an integer ≥ ${o.min} and ≤ ${o.max}.`);
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

/**
 * Reports the first flag of `argv` that its command does not know, as commander does (naming the closest
 * known flag), before commander parses anything: commander itself checks required options and values first,
 * so a misspelt `--weigths` came out as "required option '--weights' not specified" or not at all.
 */
export function reportUnknownFlag(program: Command, argv: string[]): void {
  let cmd = program;
  const known = (flag: string) => {
    for (let c: Command | null = cmd; c; c = c.parent) {
      const opt = c.options.find((o) => o.long === flag || o.short === flag);
      if (opt) return opt;
    }
    return null;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return;
    if (!a.startsWith('-') || a === '-') {
      cmd = cmd.commands.find((c) => c.name() === a || c.aliases().includes(a)) ?? cmd;
      continue;
    }
    const flag = a.includes('=') ? a.slice(0, a.indexOf('=')) : a;
    if (flag === '-h' || flag === '--help') return; // help wins: commander prints it
    const opt = known(flag);
    // commander's own report (private in its typings): the message and suggestion users see for any unknown flag
    if (!opt) (cmd as unknown as { unknownOption(flag: string): never }).unknownOption(flag);
    else if (opt.required && !a.includes('=')) i++; // its value, which may start with '-'
  }
}

/** The real path of `p`, also when it does not exist yet: its nearest existing ancestor's real path, joined with the rest. */
function realPathOf(p: string): string {
  const abs = path.resolve(p);
  if (existsSync(abs)) return realpathSync(abs);
  const parent = path.dirname(abs);
  return parent === abs ? abs : path.join(realPathOf(parent), path.basename(abs));
}

/** The folder of a run whose own file `real` is (config.json, latest, metrics.jsonl, anything under checkpoints/), or null. */
function runOwning(real: string): string | null {
  for (let d = path.dirname(real); d !== path.dirname(d); d = path.dirname(d)) {
    const rel = path.relative(d, real);
    const runFile = rel === 'config.json' || rel === 'latest' || rel === 'metrics.jsonl' || rel.split(path.sep)[0] === 'checkpoints';
    if (runFile && existsSync(path.join(d, 'config.json'))) return d;
  }
  return null;
}

/** Why the folder `dir` (which need not exist yet) cannot be written into, or null. */
function unwritable(dir: string): string | null {
  let d = path.resolve(dir);
  while (!existsSync(d)) d = path.dirname(d);
  if (!statSync(d).isDirectory()) return `${d} is a file, not a folder`;
  try { accessSync(d, constants.W_OK | constants.X_OK); } catch { return `${d} is not writable`; }
  return null;
}

/** What a command reads and writes, for checkOutputs. */
export interface CommandFiles {
  /** Files and folders it reads (a folder: everything under it). */
  inputs: (string | null | undefined)[];
  /** Files it writes. */
  outputs?: (string | null | undefined)[];
  /** Folders it writes into. */
  outputDirs?: (string | null | undefined)[];
  /** An input that the command means to replace with its new version (`dit vae train --resume F --out F`). */
  updates?: string;
}

/**
 * Refuses, before any work, an output that cannot be written (a folder where a file goes, a file where a
 * folder goes, no writable parent), that is one of the inputs or inside an input folder (paths compared
 * after following links), or that is one of a run's own files (its checkpoints, `latest`, config.json,
 * metrics.jsonl: only the run writes those).
 */
export function checkOutputs(f: CommandFiles): void {
  const given = (xs: (string | null | undefined)[] | undefined) => (xs ?? []).filter((x): x is string => !!x);
  const updates = f.updates ? realPathOf(f.updates) : null;
  const inputs = given(f.inputs).map((p) => ({ p, real: realPathOf(p) })).filter((x) => x.real !== updates);
  const outs = [...given(f.outputs).map((p) => ({ p, dir: false })), ...given(f.outputDirs).map((p) => ({ p, dir: true }))];
  for (const { p, dir } of outs) {
    const real = realPathOf(p);
    if (existsSync(real)) {
      const isDir = statSync(real).isDirectory();
      if (isDir && !dir) throw new UsageError(`${p} is a folder: give a file name to write`);
      if (!isDir && dir) throw new UsageError(`${p} is a file: give a folder to write into`);
    }
    const why = unwritable(dir ? real : path.dirname(real));
    if (why) throw new UsageError(`cannot write ${p}: ${why}`);
    if (real === updates) continue;
    const input = inputs.find((i) => i.real === real || real.startsWith(i.real + path.sep));
    if (input?.real === real) throw new UsageError(`${p} would overwrite an input of this command: choose another ${dir ? 'folder' : 'file'}`);
    if (input) throw new UsageError(`${p} is inside ${input.p}, which this command reads: choose another ${dir ? 'folder' : 'file'}`);
    const run = runOwning(real);
    if (run) throw new UsageError(`${p} is one of the files of the run ${run} (its checkpoints, latest, config.json, metrics): only the run writes those; choose another ${dir ? 'folder' : 'file'}`);
  }
}

/** The folder a `--data` spec reads, if any. */
export function dataDir(spec: DataSpec): string | null {
  return 'dir' in spec ? spec.dir : null;
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

/** `--heads` of `dit sample` and `dit eval`: for weights that do not record their config. */
export function headsOption(): Option {
  return int('--heads <n>', 'attention heads of weights that do not record their config (a .pt whose width is not DiT-S, B, L or XL\'s)', { min: 1, max: LIMITS.heads });
}

/** The sampling flags of `dit sample` and `dit eval`: each overrides the recipe the weights record (else the official sample.py's). */
export function samplingOptions(): Option[] {
  const o = OFFICIAL_SAMPLING;
  return [
    int('--steps <n>', `sampling steps [default: the weights' recipe's, else ${o.steps}]`, { min: 1, max: 1000 }),
    num('--cfg <scale>', `classifier-free guidance scale (1: none) [default: the recipe's, else ${o.cfg}]`, { min: 0, max: 1000 }),
    choice('--sampler <name>', `ddpm (ancestral, either objective), ddim (η = 0) for ε-prediction, euler or heun (the ODE) for flow matching [default: the recipe's, else ${o.sampler}]`, SAMPLER_NAMES),
    choice('--guide <channels>', `guide all latent channels, or only the first three as the official sample.py [default: the recipe's, else ${o.guide}]`, ['all', 'official']),
    cfgIntervalOption("[default: the recipe's, else every step]"),
  ];
}

/** `--cfg-interval lo,hi`: the noise levels guidance is applied at (`Sampling.cfgInterval`). */
export function cfgIntervalOption(suffix: string): Option {
  return new Option('--cfg-interval <lo,hi>', `guide only at noise levels in [lo, hi] (0: data, 1: noise; flow matching's u, else t/1000) and run the conditional model alone elsewhere ${suffix}`).argParser((v: string) => {
    const [lo, hi, ...rest] = v.split(',').map((p) => parseNumber(p, 'expected lo,hi with 0 ≤ lo < hi ≤ 1'));
    if (rest.length || hi === undefined || !(lo >= 0 && lo < hi && hi <= 1)) throw new InvalidArgumentError(`'${v}' is not lo,hi with 0 ≤ lo < hi ≤ 1.`);
    return [lo, hi];
  });
}

/** The sampling flags given (`samplingOptions`): what overrides the recipe's sampling. */
export function samplingFlags(o: Partial<Sampling>): Partial<Sampling> {
  return { sampler: o.sampler, steps: o.steps, cfg: o.cfg, guide: o.guide, cfgInterval: o.cfgInterval };
}
