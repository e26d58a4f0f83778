// Everything Node-only lives here: loading Dawn (npm `webgpu`) and file I/O. Browser builds never import it.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { CheckpointError } from './errors.js';

/** Loads Dawn's Node bindings and installs the WebGPU globals (GPUBufferUsage, …). */
export async function loadDawn(options: string[]): Promise<GPU> {
  process.env.XDG_RUNTIME_DIR ??= '/tmp'; // silences a Mesa warning on headless machines
  const { create, globals } = (await import('webgpu')) as unknown as { create: (o: string[]) => GPU; globals: object };
  Object.assign(globalThis, globals);
  const extra = process.env.DIT_DAWN_OPTIONS ? process.env.DIT_DAWN_OPTIONS.split(';').filter(Boolean) : [];
  return create([...options, ...extra]);
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
