// Node-only code, loaded at run time behind specifiers that bundlers do not follow. Modules the browser entry
// points reach (safetensors and .pt files by path, PNG files, Dawn) call into Node from here, so a browser
// bundle of the package never pulls in node:fs, Dawn or pngjs, and a browser only fails if it calls them.
import { DitError } from './errors.js';

export const isNode = typeof process !== 'undefined' && !!process.versions?.node;

// A variable, not a literal: esbuild, Rollup and webpack then leave the import to run time.
const NODE_HELPERS = './node.js';

/** engine/node.ts (Node only: file I/O, Dawn). `what` names the caller in the error a browser gets. */
export async function nodeHelpers(what: string): Promise<typeof import('./node.js')> {
  if (!isNode) throw new DitError(`${what} reads or writes files, which needs Node; in a browser, fetch the bytes and use the bytes APIs (new Safetensors(bytes), loadTorchCheckpoint(bytes), weightsFromBytes(bytes))`, { op: what });
  return import(/* webpackIgnore: true */ /* @vite-ignore */ NODE_HELPERS) as Promise<typeof import('./node.js')>;
}

/** A Node-only npm package or built-in (e.g. 'pngjs'), imported at run time. */
export async function nodePackage<T>(name: string, what: string): Promise<T> {
  if (!isNode) throw new DitError(`${what} needs Node (it uses '${name}')`, { op: what });
  return import(/* webpackIgnore: true */ /* @vite-ignore */ name) as Promise<T>;
}
