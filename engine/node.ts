// Everything Node-only lives here: loading Dawn (npm `webgpu`) and file I/O. Browser builds never import it.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { CheckpointError, DeviceError } from './errors.js';

/**
 * Dawn toggles that drop checks the engine's own kernels do not need: Tint's robustness transform (an index
 * clamp on every storage access), zero-initialising workgroup memory, and the guards around integer division
 * and modulo. Off unless DIT_TRUSTED_KERNELS=1 (Node only; never in a browser): measured on lavapipe they do
 * not speed up a training step (bench/README.md, "CPU-adapter levers"), and without them an out-of-range index
 * in a custom kernel can corrupt memory or crash the process (docs/engine.md).
 */
export const TRUSTED_TOGGLES = ['disable_robustness', 'disable_workgroup_init', 'disable_polyfills_on_integer_div_and_mod'] as const;

/** How Dawn was set up in this process (engine/device.ts reports it with the adapter). */
export interface DawnSetup {
  /** The vector width lavapipe compiles to when this process chose or inherited one (LP_NATIVE_VECTOR_WIDTH), else null (the driver's default). */
  lavapipeWidth: number | null;
  /** The trusted-kernel toggles in effect (DIT_TRUSTED_KERNELS=1), else none. */
  toggles: string[];
}

export let dawnSetup: DawnSetup = { lavapipeWidth: null, toggles: [] };

/**
 * The vector width for lavapipe (Mesa's software Vulkan driver), put in the environment before Dawn loads the
 * driver, which reads it once: LP_NATIVE_VECTOR_WIDTH when the user set it, else DIT_LAVAPIPE_WIDTH (256 or
 * 512), else the driver's default (256 bits: 512 trains no faster here and compiles each shader ~3× slower,
 * bench/README.md).
 */
export function chooseLavapipeWidth(env: Record<string, string | undefined> = process.env): number | null {
  if (env.LP_NATIVE_VECTOR_WIDTH) return Number(env.LP_NATIVE_VECTOR_WIDTH) || null;
  const asked = env.DIT_LAVAPIPE_WIDTH;
  if (!asked) return null;
  if (asked !== '256' && asked !== '512') throw new DeviceError(`DIT_LAVAPIPE_WIDTH must be 256 or 512, got '${asked}'`, { op: 'getDevice' });
  env.LP_NATIVE_VECTOR_WIDTH = asked;
  return Number(asked);
}

/** The trusted-kernel toggles for this process: TRUSTED_TOGGLES under DIT_TRUSTED_KERNELS=1, else none. */
export function trustedToggles(env: Record<string, string | undefined> = process.env): string[] {
  return env.DIT_TRUSTED_KERNELS && env.DIT_TRUSTED_KERNELS !== '0' ? [...TRUSTED_TOGGLES] : [];
}

/**
 * Dawn's `create()` options: `options`, then DIT_DAWN_OPTIONS (';'-separated), with every
 * `enable-dawn-features=` list merged into one (Dawn keeps only the last) and the trusted toggles added.
 */
export function dawnOptions(options: string[], toggles: string[], env: Record<string, string | undefined> = process.env): string[] {
  const extra = env.DIT_DAWN_OPTIONS ? env.DIT_DAWN_OPTIONS.split(';').filter(Boolean) : [];
  const enable = new Set(toggles), rest: string[] = [];
  for (const o of [...options, ...extra]) {
    if (!o.startsWith('enable-dawn-features=')) rest.push(o);
    else for (const t of o.slice(21).split(',')) if (t) enable.add(t);
  }
  return enable.size ? [...rest, `enable-dawn-features=${[...enable].join(',')}`] : rest;
}

/** Loads Dawn's Node bindings and installs the WebGPU globals (GPUBufferUsage, …). */
export async function loadDawn(options: string[]): Promise<GPU> {
  process.env.XDG_RUNTIME_DIR ??= '/tmp'; // silences a Mesa warning on headless machines
  const lavapipeWidth = chooseLavapipeWidth();
  const toggles = trustedToggles();
  const { create, globals } = (await import('webgpu')) as unknown as { create: (o: string[]) => GPU; globals: object };
  Object.assign(globalThis, globals);
  dawnSetup = { lavapipeWidth, toggles };
  return create(dawnOptions(options, toggles));
}

export async function readFileBytes(file: string): Promise<Uint8Array> {
  try {
    const b = await fs.readFile(file);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new CheckpointError(`${file}: no such file`, { file, cause: e });
    throw new CheckpointError(`${file}: cannot read (${err.message})`, { file, cause: e });
  }
}

/**
 * Writes to `file.tmp-<pid>` then renames, so a crash never leaves a half-written file, and removes the
 * temporary file when anything fails (a full disk, a rename onto a folder). (The crash-safety test sets
 * DIT_TEST_KILL_WHILE_WRITING to part of a file name: the process then kills itself after the first chunk
 * of that file.)
 */
export async function writeFileAtomic(file: string, chunks: Uint8Array[]): Promise<void> {
  await fs.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const killAt = process.env.DIT_TEST_KILL_WHILE_WRITING;
  try {
    const fh = await fs.open(tmp, 'w');
    try {
      for (const c of chunks) {
        await fh.write(c);
        if (killAt && file.includes(killAt)) process.kill(process.pid, 'SIGKILL');
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

export async function readText(file: string): Promise<string> {
  return new TextDecoder().decode(await readFileBytes(file));
}

export function dirnameOf(file: string): string {
  return path.dirname(file);
}

export function joinPath(...parts: string[]): string {
  return path.join(...parts);
}

/** Inflates raw deflate data (zip entries of torch.save files). */
export function inflateRaw(bytes: Uint8Array): Uint8Array {
  const b = inflateRawSync(bytes);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}
