// Command-line options of the bench scripts: Node's util.parseArgs in strict mode (an unknown option or a
// missing value is a usage error: the message and the usage line, exit code 2), numbers checked.
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;
type Values<O extends Options> = ReturnType<typeof parseArgs<{ options: O; strict: true; allowPositionals: false }>>['values'];

export function parseOptions<O extends Options>(options: O, usage: string): Values<O> {
  try {
    return parseArgs({ args: process.argv.slice(2), options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${usage}\n`);
    process.exit(2);
  }
}

/** A whole-number option (undefined when absent); a usage error otherwise. */
export function intOption(values: Record<string, unknown>, name: string, usage: string, min = 1): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`--${name} expects a whole number ≥ ${min}, got '${String(v)}'\n${usage}\n`);
    process.exit(2);
  }
  return n;
}
