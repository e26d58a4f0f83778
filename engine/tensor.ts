// GPU tensors with explicit lifetimes, scopes, and the autograd graph's bookkeeping.
//
// A Tensor is a handle: shape + dtype + a reference-counted Storage (one pooled GPU buffer). Reshapes are new
// handles on the same storage. `dispose()` drops the handle; the buffer returns to the pool when the last
// handle (including the ones the autograd graph saved for backward) is gone.
import { gpu } from './device.js';
import { DisposedTensorError, ShapeError } from './errors.js';
import { f16ToF32, f32ToF16 } from './half.js';

export type DType = 'f32' | 'i32' | 'f16';
export type Shape = readonly number[];
export type TypedData = Float32Array | Int32Array;

export const dtypeBytes: Record<DType, number> = { f32: 4, i32: 4, f16: 2 };

class Storage {
  refs = 1;
  constructor(readonly buffer: GPUBuffer, readonly bytes: number) {}
  retain(): this { this.refs++; return this; }
  release(): void {
    if (--this.refs === 0) gpu().pool.release(this.buffer);
  }
}

export type BackwardFn = (grad: Tensor, saved: Tensor[], needs: boolean[]) => (Tensor | null)[];

/** One recorded op of the autograd graph (or a leaf that accumulates into `leaf.grad`). */
export class Node {
  refs = 0;
  released = false;
  constructor(
    readonly op: string,
    readonly parents: (Node | null)[],
    public saved: Tensor[],
    readonly backward: BackwardFn | null,
    readonly leaf: Tensor | null,
  ) {
    for (const p of parents) if (p && !p.leaf) p.refs++;
  }
  unref(): void {
    if (this.leaf || --this.refs > 0) return;
    this.releaseSaved();
    for (const p of this.parents) p?.unref();
  }
  releaseSaved(): void {
    for (const t of this.saved) t.dispose();
    this.saved = [];
    this.released = true;
  }
}

// ---------------------------------------------------------------------------------------------- scopes
type Scope = Set<Tensor>;
const scopes: Scope[] = [];
let gradEnabled = true;

export function isGradEnabled(): boolean { return gradEnabled; }

/** Runs `fn` with autograd recording off (inference, optimizer updates, backward itself). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try { return fn(); } finally { gradEnabled = prev; }
}

function collect(value: unknown, into: Set<Tensor>, depth = 0): void {
  if (value instanceof Tensor) into.add(value);
  else if (depth < 4 && value && typeof value === 'object') {
    if (value instanceof Map) for (const v of value.values()) collect(v, into, depth + 1);
    else if (Array.isArray(value)) for (const v of value) collect(v, into, depth + 1);
    else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collect(v, into, depth + 1);
  }
}

function closeScope(scope: Scope, result: unknown): void {
  const keepSet = new Set<Tensor>();
  collect(result, keepSet);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (keepSet.has(t)) { t.scope = parent ?? null; parent?.add(t); } else t.dispose();
  }
}

/**
 * Runs `fn`; every tensor created inside is disposed at exit, except the ones returned (anywhere in an array,
 * Map or plain object) and the ones marked with `keep()`. Returned tensors move to the enclosing scope.
 */
export function scope<T>(fn: () => T): T {
  const s: Scope = new Set();
  scopes.push(s);
  let result: T | undefined;
  try {
    result = fn();
    if (result instanceof Promise) throw new ShapeError('scope(fn): fn returned a Promise; use scopeAsync(fn) for async functions', { op: 'scope' });
    return result;
  } finally {
    scopes.pop();
    closeScope(s, result);
  }
}

/** `scope` for async functions. Scopes are a stack: do not interleave two async scopes concurrently. */
export async function scopeAsync<T>(fn: () => Promise<T>): Promise<T> {
  const s: Scope = new Set();
  scopes.push(s);
  let result: T | undefined;
  try {
    result = await fn();
    return result;
  } finally {
    const i = scopes.lastIndexOf(s);
    if (i >= 0) scopes.splice(i, 1);
    closeScope(s, result);
  }
}

/** Marks tensors as living beyond every scope (until `dispose()`). */
export function keep<T extends Tensor | Tensor[]>(t: T): T {
  for (const x of Array.isArray(t) ? t : [t]) x.keep();
  return t;
}

// ---------------------------------------------------------------------------------------------- tensor
export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function fmtShape(shape: Shape): string { return `[${shape.join(',')}]`; }

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  requiresGrad = false;
  grad: Tensor | null = null;
  node: Node | null = null;
  /** Optional name (parameters get their state-dict name). */
  name = '';
  /** @internal the scope that will dispose this tensor, if any. */
  scope: Scope | null = null;
  private store: Storage | null;

  /** @internal use Tensor.empty / Tensor.from / ops. */
  constructor(readonly shape: Shape, readonly dtype: DType, storage: Storage, scoped = true) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new ShapeError(`invalid shape ${fmtShape(shape)}: dimensions must be integers ≥ 0`, { op: 'Tensor' });
    }
    this.store = storage;
    if (scoped) {
      const s = scopes[scopes.length - 1];
      if (s) { s.add(this); this.scope = s; }
    }
  }

  /** A new uninitialised tensor (contents are NaN when `gpu().poison` is set). */
  static empty(shape: Shape, dtype: DType = 'f32', label = 'tensor'): Tensor {
    const bytes = Math.max(4, Math.ceil((numel(shape) * dtypeBytes[dtype]) / 4) * 4);
    const g = gpu();
    const buffer = g.pool.acquire(bytes, label);
    const t = new Tensor(shape, dtype, new Storage(buffer, bytes));
    if (g.poison) {
      // An upload is ordered after pending work like a dispatch, so a recycled buffer is poisoned in turn.
      const words = Math.floor(Math.min(bytes, g.maxBindingBytes) / 4);
      g.upload(buffer, new Uint32Array(words).fill(dtype === 'f16' ? 0x7e007e00 : dtype === 'i32' ? 0x7fffffff : 0x7fc00000));
    }
    return t;
  }

  /** Uploads `data` (f32 data for f16 tensors is converted on the CPU). */
  static from(data: ArrayLike<number> | TypedData, shape?: Shape, dtype?: DType): Tensor {
    const dt: DType = dtype ?? (data instanceof Int32Array ? 'i32' : 'f32');
    const shp = shape ?? [data.length];
    if (numel(shp) !== data.length) {
      throw new ShapeError(`Tensor.from: ${data.length} values do not fill shape ${fmtShape(shp)} (${numel(shp)} elements)`, { op: 'Tensor.from' });
    }
    const t = Tensor.empty(shp, dt, 'upload');
    let bytes: ArrayBufferView;
    if (dt === 'f16') bytes = f32ToF16(data instanceof Float32Array ? data : Float32Array.from(data));
    else if (dt === 'i32') bytes = data instanceof Int32Array ? data : Int32Array.from(data);
    else bytes = data instanceof Float32Array ? data : Float32Array.from(data);
    if (bytes.byteLength) gpu().upload(t.buffer, bytes);
    return t;
  }

  get size(): number { return numel(this.shape); }
  get ndim(): number { return this.shape.length; }
  get bytes(): number { return this.live.bytes; }
  get disposed(): boolean { return this.store === null; }

  private get live(): Storage {
    if (!this.store) throw new DisposedTensorError(`tensor ${fmtShape(this.shape)} ${this.dtype}${this.name ? ` '${this.name}'` : ''} was used after dispose() (or after the scope() that made it ended); return it from the scope or keep() it to use it later`);
    return this.store;
  }

  get buffer(): GPUBuffer { return this.live.buffer; }

  /** The binding for a dispatch. */
  get binding(): { buffer: GPUBuffer; bytes: number } {
    const s = this.live;
    return { buffer: s.buffer, bytes: s.bytes };
  }

  /** A new handle on the same storage (no copy). @internal */
  view(shape: Shape, scoped = true): Tensor {
    return new Tensor(shape, this.dtype, this.live.retain(), scoped);
  }

  /** A handle on the same data, outside the autograd graph. */
  detach(): Tensor { return this.view(this.shape); }

  /** Reads the tensor back (f16 data comes back as f32). */
  async data(): Promise<TypedData> {
    const s = this.live;
    const nbytes = this.size * dtypeBytes[this.dtype];
    if (nbytes === 0) return this.dtype === 'i32' ? new Int32Array(0) : new Float32Array(0);
    const raw = await gpu().read(s.buffer, nbytes, `read ${fmtShape(this.shape)}`);
    if (this.dtype === 'i32') return new Int32Array(raw);
    if (this.dtype === 'f16') return f16ToF32(new Uint16Array(raw));
    return new Float32Array(raw);
  }

  /** The value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new ShapeError(`item(): tensor ${fmtShape(this.shape)} has ${this.size} elements, not 1; use data() for the whole tensor`, { op: 'item' });
    return (await this.data())[0];
  }

  keep(): this {
    this.scope?.delete(this);
    this.scope = null;
    return this;
  }

  dispose(): void {
    if (!this.store) return;
    this.scope?.delete(this);
    this.scope = null;
    this.store.release();
    this.store = null;
    if (this.node && !this.node.leaf) this.node.unref();
    this.node = null;
    if (this.grad) { this.grad.dispose(); this.grad = null; }
  }

  /** The graph node that accumulates into this leaf's `.grad`. @internal */
  gradNode(): Node | null {
    if (!this.requiresGrad) return null;
    if (!this.node) this.node = new Node('leaf', [], [], null, this);
    return this.node;
  }

  setRequiresGrad(v = true): this {
    if (this.node && !this.node.leaf) throw new ShapeError('requiresGrad can only be set on leaf tensors (this one is the output of an op; detach() it first)', { op: 'setRequiresGrad' });
    this.requiresGrad = v;
    if (!v) this.node = null;
    return this;
  }

  toString(): string { return `Tensor(${fmtShape(this.shape)}, ${this.dtype}${this.name ? `, '${this.name}'` : ''})`; }
}

/**
 * Attaches `out` to the autograd graph: `backward(grad, saved, needs)` returns one gradient per input (null
 * where `needs[i]` is false). `saved` tensors are kept alive exactly until backward has used them.
 */
export function record(op: string, out: Tensor, inputs: Tensor[], saved: Tensor[], backward: BackwardFn): Tensor {
  if (!gradEnabled || !inputs.some((t) => t.requiresGrad)) return out;
  const parents = inputs.map((t) => t.gradNode());
  const node = new Node(op, parents, saved.map((t) => t.view(t.shape, false)), backward, null);
  node.refs++;
  out.node = node;
  out.requiresGrad = true;
  return out;
}

/**
 * The gradient of one input assembled from the backwards of several ops that each read a piece of it (split,
 * chunks read in place): the first backward to arrive allocates it and returns it to autograd, later ones
 * write their piece into it in place and return nothing, unless autograd has meanwhile summed it with another
 * gradient of the input and freed it (then the next piece starts a new one). One gradient per piece, padded
 * and summed, would cost a pad and an add per piece.
 */
export class AssembledGradient {
  private grad: Tensor | null = null;

  /** The gradient to write this piece into, and whether this backward returns it (it was just allocated). */
  claim(allocate: () => Tensor): { grad: Tensor; fresh: boolean } {
    if (this.grad && !this.grad.disposed) return { grad: this.grad, fresh: false };
    this.grad = allocate();
    return { grad: this.grad, fresh: true };
  }
}

/** Throws a ShapeError (op name + shapes) unless `cond`. */
export function check(cond: unknown, op: string, msg: string): asserts cond {
  if (!cond) throw new ShapeError(`${op}: ${msg}`, { op });
}

export function checkDtype(op: string, t: Tensor, ...allowed: DType[]): void {
  check(allowed.includes(t.dtype), op, `expected ${allowed.join(' or ')} input, got ${t.dtype} ${fmtShape(t.shape)}`);
}

/** Live/pooled GPU bytes and buffer counts. */
export function memory() {
  return gpu().pool.stats();
}
