#!/usr/bin/env node
// The `dit` command. Options are declared once per command (commander): parsing, validation and `--help`
// come from that declaration. Exit codes (docs/cli.md): 0 done, 1 failed, 2 a usage or input error found
// before any GPU work (a bad or unknown flag, an input file it cannot use, an output that would destroy an
// input), 3 training stopped on non-finite values (nothing written for them).
//
// Dawn prints two warnings while it enumerates a lavapipe adapter ("maxDynamic…BuffersPerPipelineLayout
// artificially reduced … to fit dynamic offset allocation limit"): its own clamp of the driver's descriptor
// limits, whatever limits we request, with no option to silence it. So the command runs itself as a child
// and drops exactly those two lines from its stderr (DIT_DAWN_WARNINGS=1 shows them).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { closeDevice, deviceRequested } from '../engine/device.js';
import { CheckpointError, NonFiniteError } from '../engine/errors.js';
import { UsageError, EXAMPLES, reportUnknownFlag } from './options.js';
import { registerDemo } from './demo.js';
import { registerTrain } from './train.js';
import { registerSample } from './sample.js';
import { registerEval } from './eval.js';
import { registerTools } from './tools.js';
import { registerVae, registerData } from './vae.js';
import { registerBench } from './bench.js';
import { registerTeacher } from './teacher.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command('dit')
    .description('DiT (Scalable Diffusion Models with Transformers) on WebGPU: train, sample, evaluate, verify, benchmark')
    .version(pkg.version)
    .exitOverride()
    .showHelpAfterError('(add --help for the options)')
    .configureHelp({ sortSubcommands: false, showGlobalOptions: false });
  registerDemo(program);
  registerTrain(program);
  registerSample(program);
  registerEval(program);
  registerTools(program);
  registerVae(program);
  registerTeacher(program);
  registerData(program);
  registerBench(program);
  program.addHelpText('after', `\nExamples:\n${[...EXAMPLES.values()].map((l) => l[0]).map((l) => `  $ ${l}`).join('\n')}\n\n'dit <command> --help' shows a command's options and examples.\n`);
  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    reportUnknownFlag(program, argv);
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here with exit code 0; every parsing error has been printed already.
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help' ? 0 : 2;
    }
    if (e instanceof UsageError) { process.stderr.write(`dit: ${e.message}\n`); return 2; }
    // An input the command cannot use (missing, corrupt, not what it needs), found before any GPU work.
    if (e instanceof CheckpointError && !deviceRequested()) { process.stderr.write(`dit: ${e.message}\n`); return 2; }
    if (e instanceof NonFiniteError) { process.stderr.write(`dit: ${e.message}; stopped, nothing written for it\n`); return 3; }
    throw e;
  }
}

const DAWN_CLAMP_WARNING = /^Warning: maxDynamic(Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.\n/;

/** Runs this command in a child whose stderr passes through minus Dawn's two clamp warnings. */
function runFiltered(): void {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: ['inherit', 'inherit', 'pipe'], env: { ...process.env, DIT_CHILD: '1', DIT_STDERR_TTY: process.stderr.isTTY ? '1' : '0' },
  });
  let pending = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    pending += chunk;
    // Pass everything through at once except a possible start of the warning, held until its line ends.
    for (;;) {
      const m = DAWN_CLAMP_WARNING.exec(pending);
      if (m) { pending = pending.slice(m[0].length); continue; }
      const nl = pending.indexOf('\n');
      const line = nl < 0 ? pending : pending.slice(0, nl + 1);
      if (nl < 0 && 'Warning: maxDynamic'.startsWith(line.slice(0, 19)) && line.length < 200) break;
      process.stderr.write(line);
      pending = pending.slice(line.length);
      if (!pending) break;
    }
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
  child.on('close', (code, signal) => {
    if (pending) process.stderr.write(pending);
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
}

if (!process.env.DIT_CHILD && !process.env.DIT_DAWN_WARNINGS) runFiltered();
// The device is destroyed before exiting: process.exit with Dawn still holding it can segfault.
else main(process.argv.slice(2)).then(async (code) => {
  await closeDevice();
  process.exit(code);
}, async (e: Error) => {
  process.stderr.write(`dit: ${e.message}\n`);
  if (process.env.DIT_DEBUG) process.stderr.write(`${e.stack}\n`);
  await closeDevice().catch(() => undefined);
  process.exit(1);
});
