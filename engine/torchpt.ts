// Reads PyTorch `torch.save` checkpoints without Python: the zip container and the subset of pickle that a
// state dict (or a training checkpoint {model, ema, opt, args}) uses: _rebuild_tensor_v2, typed storages,
// OrderedDict, argparse.Namespace and plain containers. Tensors come out contiguous, as host arrays.
import { bf16ToF32, f16ToF32 } from './half.js';
import { CheckpointError, type ErrorDetails } from './errors.js';
import { isNode, nodeHelpers } from './runtime.js';
import { crc32 } from './checksum.js';

/** A torch.save file that cannot be read: a CheckpointError. */
export class TorchLoadError extends CheckpointError {
  override name = 'TorchLoadError';
  constructor(message: string, details: ErrorDetails = {}) { super(message, details); }
}

export interface TorchTensor { dtype: 'F32' | 'F64' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL'; shape: number[]; data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Int16Array | Uint16Array }

// ------------------------------------------------------------------------------------------ zip
interface ZipEntry { name: string; method: number; offset: number; csize: number; size: number }

function readZip(bytes: Uint8Array, source: string): Map<string, ZipEntry> {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (m: string): never => { throw new TorchLoadError(`${source}: ${m}`, { file: source }); };
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 65557); i--) {
    if (dv.getUint32(i, true) === 0x06054b50) { eocd = i; break; }
  }
  if (eocd < 0) {
    if (bytes[0] === 0x80) fail('legacy (pre-1.6, non-zip) torch format is not supported; re-save it with torch.save in PyTorch ≥ 1.6');
    fail('not a zip archive (truncated, or not a torch.save file)');
  }
  let count = dv.getUint16(eocd + 10, true);
  let cdOff = dv.getUint32(eocd + 16, true);
  // ZIP64 end of central directory locator.
  if (eocd >= 20 && dv.getUint32(eocd - 20, true) === 0x07064b50) {
    const z64 = Number(dv.getBigUint64(eocd - 12, true));
    if (dv.getUint32(z64, true) === 0x06064b50) {
      count = Number(dv.getBigUint64(z64 + 32, true));
      cdOff = Number(dv.getBigUint64(z64 + 48, true));
    }
  }
  const entries = new Map<string, ZipEntry>();
  let p = cdOff;
  for (let i = 0; i < count; i++) {
    if (p + 46 > bytes.length || dv.getUint32(p, true) !== 0x02014b50) fail('corrupt zip central directory');
    const method = dv.getUint16(p + 10, true);
    let csize = dv.getUint32(p + 20, true), size = dv.getUint32(p + 24, true);
    const nlen = dv.getUint16(p + 28, true), xlen = dv.getUint16(p + 30, true), clen = dv.getUint16(p + 32, true);
    let local = dv.getUint32(p + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nlen));
    // ZIP64 extra field: sizes and offset that did not fit in 32 bits.
    let x = p + 46 + nlen;
    const xend = x + xlen;
    while (x + 4 <= xend) {
      const id = dv.getUint16(x, true), len = dv.getUint16(x + 2, true);
      if (id === 1) {
        let q = x + 4;
        if (size === 0xffffffff) { size = Number(dv.getBigUint64(q, true)); q += 8; }
        if (csize === 0xffffffff) { csize = Number(dv.getBigUint64(q, true)); q += 8; }
        if (local === 0xffffffff) { local = Number(dv.getBigUint64(q, true)); }
      }
      x += 4 + len;
    }
    if (local + 30 > bytes.length) fail(`truncated: entry '${name}' starts past the end`);
    const lnlen = dv.getUint16(local + 26, true), lxlen = dv.getUint16(local + 28, true);
    const offset = local + 30 + lnlen + lxlen;
    if (offset + csize > bytes.length) fail(`truncated: entry '${name}' (${csize} bytes) runs past the end of the file`);
    entries.set(name, { name, method, offset, csize, size });
    p += 46 + nlen + xlen + clen;
  }
  return entries;
}

async function entryBytes(bytes: Uint8Array, e: ZipEntry, source: string): Promise<Uint8Array> {
  const raw = bytes.subarray(e.offset, e.offset + e.csize);
  if (e.method === 0) return raw;
  if (e.method === 8) {
    if (isNode) return (await nodeHelpers('loadTorchCheckpoint')).inflateRaw(raw);
    const ds = new DecompressionStream('deflate-raw');
    const out = await new Response(new Blob([raw.slice()]).stream().pipeThrough(ds)).arrayBuffer();
    return new Uint8Array(out);
  }
  throw new TorchLoadError(`${source}: zip entry '${e.name}' uses unsupported compression method ${e.method}`, { file: source });
}

// ------------------------------------------------------------------------------------------ pickle
const STORAGE_DTYPES: Record<string, TorchTensor['dtype']> = {
  FloatStorage: 'F32', DoubleStorage: 'F64', HalfStorage: 'F16', BFloat16Storage: 'BF16', LongStorage: 'I64',
  IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8', BoolStorage: 'BOOL',
};
const ELEM: Record<TorchTensor['dtype'], number> = { F32: 4, F64: 8, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

class Global { constructor(readonly module: string, readonly name: string) {} }
class Obj { state: unknown = null; constructor(readonly cls: Global, readonly args: unknown[]) {} }
interface StorageRef { dtype: TorchTensor['dtype']; key: string }
const MARK = Symbol('mark');

/** A generic Python object produced while unpickling (classes we do not model). */
export type PyValue = unknown;

function unpickle(data: Uint8Array, source: string, persistentLoad: (pid: unknown) => unknown): PyValue {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let p = 0;
  const fail = (m: string): never => { throw new TorchLoadError(`${source}: pickle: ${m}`, { file: source }); };
  const popMark = (): unknown[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) fail('MARK not found');
    const items = stack.splice(i + 1);
    stack.pop();
    return items;
  };
  const readLine = () => { const e = data.indexOf(10, p); const s = new TextDecoder().decode(data.subarray(p, e)); p = e + 1; return s; };
  const str = (n: number) => { const s = new TextDecoder().decode(data.subarray(p, p + n)); p += n; return s; };
  const call = (fn: unknown, args: unknown[]): unknown => {
    if (!(fn instanceof Global)) fail('REDUCE on a non-class');
    const g = fn as Global;
    const full = `${g.module}.${g.name}`;
    if (full === 'torch._utils._rebuild_tensor_v2' || full === 'torch._utils._rebuild_tensor') return rebuildTensor(args);
    if (full === 'collections.OrderedDict') return new Map();
    if (full === 'torch._utils._rebuild_parameter') return args[0];
    return new Obj(g, args);
  };
  const rebuildTensor = (args: unknown[]) => {
    const [storage, offset, size, stride] = args as [{ ref: StorageRef; bytes: Uint8Array }, number, number[], number[]];
    return { storage, offset, size: [...size], stride: [...stride] };
  };
  for (;;) {
    if (p >= data.length) fail('unexpected end of data (truncated)');
    const op = data[p++];
    switch (op) {
      case 0x80: p++; break; // PROTO
      case 0x95: p += 8; break; // FRAME
      case 0x2e: return stack.pop(); // STOP
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x28: stack.push(MARK); break; // MARK
      case 0x71: memo.set(data[p++], stack[stack.length - 1]); break; // BINPUT
      case 0x72: memo.set(dv.getUint32(p, true), stack[stack.length - 1]); p += 4; break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, stack[stack.length - 1]); break; // MEMOIZE
      case 0x68: stack.push(memo.get(data[p++])); break; // BINGET
      case 0x6a: stack.push(memo.get(dv.getUint32(p, true))); p += 4; break; // LONG_BINGET
      case 0x58: { const n = dv.getUint32(p, true); p += 4; stack.push(str(n)); break; } // BINUNICODE
      case 0x8c: { const n = data[p++]; stack.push(str(n)); break; } // SHORT_BINUNICODE
      case 0x8d: { const n = Number(dv.getBigUint64(p, true)); p += 8; stack.push(str(n)); break; } // BINUNICODE8
      case 0x54: { const n = dv.getUint32(p, true); p += 4; stack.push(str(n)); break; } // BINSTRING
      case 0x55: { const n = data[p++]; stack.push(str(n)); break; } // SHORT_BINSTRING
      case 0x42: { const n = dv.getUint32(p, true); p += 4; stack.push(data.slice(p, p + n)); p += n; break; } // BINBYTES
      case 0x43: { const n = data[p++]; stack.push(data.slice(p, p + n)); p += n; break; } // SHORT_BINBYTES
      case 0x4a: stack.push(dv.getInt32(p, true)); p += 4; break; // BININT
      case 0x4b: stack.push(data[p++]); break; // BININT1
      case 0x4d: stack.push(dv.getUint16(p, true)); p += 2; break; // BININT2
      case 0x8a: { // LONG1
        const n = data[p++];
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[p + i]);
        if (n && data[p + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        p += n;
        stack.push(Number(v));
        break;
      }
      case 0x47: stack.push(dv.getFloat64(p, false)); p += 8; break; // BINFLOAT
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x85: stack.push([stack.pop()]); break; // TUPLE1
      case 0x86: { const b = stack.pop(); const a = stack.pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = stack.pop(); const b = stack.pop(); const a = stack.pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x64: { const items = popMark(); const m = new Map(); for (let i = 0; i < items.length; i += 2) m.set(items[i], items[i + 1]); stack.push(m); break; } // DICT
      case 0x61: { const v = stack.pop(); (stack[stack.length - 1] as unknown[]).push(v); break; } // APPEND
      case 0x65: { const items = popMark(); (stack[stack.length - 1] as unknown[]).push(...items); break; } // APPENDS
      case 0x73: { const v = stack.pop(); const k = stack.pop(); setItem(stack[stack.length - 1], k, v); break; } // SETITEM
      case 0x75: { const items = popMark(); const d = stack[stack.length - 1]; for (let i = 0; i < items.length; i += 2) setItem(d, items[i], items[i + 1]); break; } // SETITEMS
      case 0x63: { const mod = readLine(); const name = readLine(); stack.push(new Global(mod, name)); break; } // GLOBAL
      case 0x93: { const name = stack.pop() as string; const mod = stack.pop() as string; stack.push(new Global(mod, name)); break; } // STACK_GLOBAL
      case 0x52: { const args = stack.pop() as unknown[]; const fn = stack.pop(); stack.push(call(fn, args)); break; } // REDUCE
      case 0x81: { const args = stack.pop() as unknown[]; const cls = stack.pop(); stack.push(call(cls, args)); break; } // NEWOBJ
      case 0x62: { const state = stack.pop(); const obj = stack[stack.length - 1]; if (obj instanceof Obj) obj.state = state; break; } // BUILD
      case 0x51: stack.push(persistentLoad(stack.pop())); break; // BINPERSID
      default: fail(`unsupported opcode 0x${op.toString(16)} at byte ${p - 1}`);
    }
  }
  function setItem(d: unknown, k: unknown, v: unknown) {
    if (d instanceof Map) d.set(k, v);
    else if (d instanceof Obj) { if (!(d.state instanceof Map)) d.state = new Map(); (d.state as Map<unknown, unknown>).set(k, v); }
    else fail('SETITEM on a non-dict');
  }
}

/** Copies a (possibly strided) view of a storage into a contiguous typed array. */
function materialize(t: { storage: { ref: StorageRef; bytes: Uint8Array }; offset: number; size: number[]; stride: number[] }, source: string, name: string): TorchTensor {
  const { dtype } = t.storage.ref;
  const el = ELEM[dtype];
  const n = t.size.reduce((a, b) => a * b, 1);
  const bytes = t.storage.bytes;
  const aligned = bytes.byteOffset % el === 0 ? bytes : bytes.slice();
  const view = (() => {
    const len = aligned.byteLength / el;
    switch (dtype) {
      case 'F32': return new Float32Array(aligned.buffer, aligned.byteOffset, len);
      case 'F64': return new Float64Array(aligned.buffer, aligned.byteOffset, len);
      case 'F16': case 'BF16': return new Uint16Array(aligned.buffer, aligned.byteOffset, len);
      case 'I64': return new BigInt64Array(aligned.buffer, aligned.byteOffset, len);
      case 'I32': return new Int32Array(aligned.buffer, aligned.byteOffset, len);
      case 'I16': return new Int16Array(aligned.buffer, aligned.byteOffset, len);
      case 'I8': return new Int8Array(aligned.buffer, aligned.byteOffset, len);
      default: return new Uint8Array(aligned.buffer, aligned.byteOffset, len);
    }
  })();
  const contiguous = t.size.every((_, i) => t.stride[i] === t.size.slice(i + 1).reduce((a, b) => a * b, 1) || t.size[i] === 1);
  let maxIdx = t.offset;
  t.size.forEach((d, i) => { if (d > 0) maxIdx += (d - 1) * t.stride[i]; });
  if (n > 0 && maxIdx >= view.length) throw new TorchLoadError(`${source}: tensor '${name}' reads past the end of its storage (truncated file?)`, { file: source });
  if (contiguous) return { dtype, shape: t.size, data: view.slice(t.offset, t.offset + n) as TorchTensor['data'] };
  const out = new (view.constructor as { new (n: number): TorchTensor['data'] })(n);
  const idx = new Array(t.size.length).fill(0);
  for (let i = 0; i < n; i++) {
    let o = t.offset;
    for (let d = 0; d < idx.length; d++) o += idx[d] * t.stride[d];
    (out as unknown as unknown[])[i] = (view as unknown as unknown[])[o];
    for (let d = idx.length - 1; d >= 0; d--) { if (++idx[d] < t.size[d]) break; idx[d] = 0; }
  }
  return { dtype, shape: t.size, data: out };
}

/** A torch.save checkpoint: its top-level object with tensors materialised, plus helpers to find state dicts. */
export interface TorchCheckpoint { root: PyValue; source: string }

/** Parses a torch.save (zip) file's bytes. */
export async function loadTorchCheckpoint(bytes: Uint8Array, source = '<bytes>'): Promise<TorchCheckpoint> {
  const entries = readZip(bytes, source);
  const pkl = [...entries.keys()].find((k) => k.endsWith('/data.pkl') || k === 'data.pkl');
  if (!pkl) throw new TorchLoadError(`${source}: no data.pkl in the archive (not a torch.save checkpoint)`, { file: source });
  const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
  const storages = new Map<string, Uint8Array>();
  for (const [name, e] of entries) {
    if (name.startsWith(`${prefix}data/`)) storages.set(name.slice(prefix.length + 5), await entryBytes(bytes, e, source));
  }
  const root = unpickle(await entryBytes(bytes, entries.get(pkl)!, source), source, (pid) => {
    const [kind, cls, key] = pid as [string, Global, string];
    if (kind !== 'storage') throw new TorchLoadError(`${source}: unsupported persistent id '${kind}'`, { file: source });
    const dtype = STORAGE_DTYPES[cls.name];
    if (!dtype) throw new TorchLoadError(`${source}: unsupported storage type ${cls.module}.${cls.name}`, { file: source });
    const b = storages.get(String(key));
    if (!b) throw new TorchLoadError(`${source}: storage data/${key} is missing from the archive (truncated?)`, { file: source });
    return { ref: { dtype, key: String(key) }, bytes: b };
  });
  return { root: resolveTensors(root, source, ''), source };
}

function isRawTensor(v: unknown): v is { storage: { ref: StorageRef; bytes: Uint8Array }; offset: number; size: number[]; stride: number[] } {
  return !!v && typeof v === 'object' && 'storage' in v && 'stride' in v && 'size' in v;
}

function resolveTensors(v: unknown, source: string, path: string): unknown {
  if (isRawTensor(v)) return materialize(v, source, path);
  if (v instanceof Map) {
    const out = new Map();
    for (const [k, x] of v) out.set(k, resolveTensors(x, source, path ? `${path}.${k}` : String(k)));
    return out;
  }
  if (Array.isArray(v)) return v.map((x, i) => resolveTensors(x, source, `${path}[${i}]`));
  if (v instanceof Obj) { v.state = resolveTensors(v.state, source, path); return v; }
  return v;
}

export function isTorchTensor(v: unknown): v is TorchTensor {
  return !!v && typeof v === 'object' && 'dtype' in v && 'shape' in v && 'data' in v;
}

/** The tensor as float32 (exact for F32, converted otherwise). */
export function torchTensorF32(t: TorchTensor): Float32Array {
  switch (t.dtype) {
    case 'F32': return t.data as Float32Array;
    case 'F16': return f16ToF32(t.data as Uint16Array);
    case 'BF16': return bf16ToF32(t.data as Uint16Array);
    case 'I64': return Float32Array.from(t.data as BigInt64Array, (x) => Number(x));
    default: return Float32Array.from(t.data as ArrayLike<number>);
  }
}

/**
 * The state dict inside a checkpoint: the root itself when it maps names to tensors (released weights), or
 * root[key] for a training checkpoint ({model, ema, opt, args}; `key` defaults to 'ema' as DiT's find_model).
 */
export function stateDictOf(ck: TorchCheckpoint, key?: 'ema' | 'model'): Map<string, TorchTensor> {
  const root = ck.root;
  if (!(root instanceof Map)) throw new TorchLoadError(`${ck.source}: the checkpoint is not a dict`, { file: ck.source });
  const isSd = (m: Map<unknown, unknown>) => m.size > 0 && [...m.values()].every(isTorchTensor);
  if (isSd(root) && !key) return root as Map<string, TorchTensor>;
  const k = key ?? (root.has('ema') ? 'ema' : 'model');
  const sub = root.get(k);
  if (!(sub instanceof Map) || !isSd(sub)) {
    if (isSd(root)) throw new TorchLoadError(`${ck.source}: a bare state dict has no '${key}' entry`, { file: ck.source });
    throw new TorchLoadError(`${ck.source}: no state dict under '${k}' (keys: ${[...root.keys()].join(', ')})`, { file: ck.source });
  }
  return sub as Map<string, TorchTensor>;
}

// ------------------------------------------------------------------------------------------ writing
// torch.save's format, written without Python: a zip (stored, CRC-32, each entry's data 64-byte aligned as
// torch writes it) holding `<name>/data.pkl` (pickle protocol 2), one `<name>/data/<key>` per tensor storage
// and `<name>/version` ("3"). In the pickle a tensor is torch._utils._rebuild_tensor_v2(persistent storage
// id ('storage', torch.FloatStorage, key, 'cpu', numel), 0, size, stride, False, OrderedDict()). Python
// values: numbers that are integers pickle as int, others as float (wrap in PyFloat to force a float);
// arrays as lists, PyTuple as tuples, Map as dict, PyOrderedDict as collections.OrderedDict.

/** A Python float even when the value is integral. */
export class PyFloat { constructor(readonly value: number) {} }
export class PyTuple { constructor(readonly items: unknown[]) {} }
export class PyOrderedDict { constructor(readonly entries: Map<string, unknown>) {} }

class PickleWriter {
  private readonly parts: number[] = [];
  readonly storages: Uint8Array[] = [];
  private byte(...b: number[]): void { this.parts.push(...b); }
  private u32(v: number): void { this.byte(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff); }
  private text(s: string): void { const b = new TextEncoder().encode(s); this.byte(0x58); this.u32(b.length); for (const x of b) this.parts.push(x); }
  private global(mod: string, name: string): void { this.byte(0x63); for (const x of new TextEncoder().encode(`${mod}\n${name}\n`)) this.parts.push(x); }
  private int(v: number): void {
    if (!Number.isSafeInteger(v)) throw new CheckpointError(`torch writer: ${v} is not a safe integer`, { op: 'serializeTorch' });
    if (v >= 0 && v < 256) this.byte(0x4b, v);
    else if (v >= -(2 ** 31) && v < 2 ** 31) { this.byte(0x4a); this.u32(v >>> 0); } else {
      let x = BigInt(v);
      const bytes: number[] = [];
      for (let i = 0; i < 8; i++) { bytes.push(Number(x & 0xffn)); x >>= 8n; }
      this.byte(0x8a, 8, ...bytes);
    }
  }
  private float(v: number): void { const b = new Uint8Array(8); new DataView(b.buffer).setFloat64(0, v, false); this.byte(0x47, ...b); }

  value(v: unknown): void {
    if (v === null || v === undefined) this.byte(0x4e);
    else if (v === true) this.byte(0x88);
    else if (v === false) this.byte(0x89);
    else if (v instanceof PyFloat) this.float(v.value);
    else if (typeof v === 'number') { if (Number.isInteger(v)) this.int(v); else this.float(v); }
    else if (typeof v === 'string') this.text(v);
    else if (v instanceof PyTuple) { this.byte(0x28); for (const x of v.items) this.value(x); this.byte(0x74); }
    else if (Array.isArray(v)) { this.byte(0x5d); if (v.length) { this.byte(0x28); for (const x of v) this.value(x); this.byte(0x65); } }
    else if (v instanceof PyOrderedDict) { this.global('collections', 'OrderedDict'); this.byte(0x29, 0x52); this.items(v.entries); }
    else if (v instanceof Map) { this.byte(0x7d); this.items(v); }
    else if (isTorchTensor(v)) this.tensor(v);
    else throw new CheckpointError(`torch writer: cannot pickle ${Object.prototype.toString.call(v)}`, { op: 'serializeTorch' });
  }

  private items(m: Map<unknown, unknown>): void {
    if (!m.size) return;
    this.byte(0x28);
    for (const [k, x] of m) { this.value(k); this.value(x); }
    this.byte(0x75);
  }

  private tensor(t: TorchTensor): void {
    const cls = Object.entries(STORAGE_DTYPES).find(([, d]) => d === t.dtype)?.[0];
    if (!cls) throw new CheckpointError(`torch writer: unsupported dtype ${t.dtype}`, { op: 'serializeTorch' });
    const key = this.storages.length;
    this.storages.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    const n = t.shape.reduce((a, b) => a * b, 1);
    const stride = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
    this.global('torch._utils', '_rebuild_tensor_v2');
    this.byte(0x28); // args tuple
    this.byte(0x28); this.text('storage'); this.global('torch', cls); this.text(String(key)); this.text('cpu'); this.int(n); this.byte(0x74, 0x51); // BINPERSID
    this.int(0);
    this.value(new PyTuple(t.shape));
    this.value(new PyTuple(stride));
    this.byte(0x89);
    this.global('collections', 'OrderedDict'); this.byte(0x29, 0x52);
    this.byte(0x74, 0x52);
  }

  finish(): Uint8Array { return Uint8Array.from([0x80, 2, ...this.parts, 0x2e]); }
}

/** Zip entries (stored), data aligned to 64 bytes through the local header's extra field. */
function zipStored(files: { name: string; data: Uint8Array }[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const f of files) {
    const name = new TextEncoder().encode(f.name);
    const pad = (64 - ((offset + 30 + name.length + 4) % 64)) % 64;
    const extra = new Uint8Array(4 + pad);
    new DataView(extra.buffer).setUint16(0, 0x4246, true); // 'FB', torch's padding record
    new DataView(extra.buffer).setUint16(2, pad, true);
    const crc = crc32(f.data);
    const h = new Uint8Array(30);
    const dv = new DataView(h.buffer);
    dv.setUint32(0, 0x04034b50, true); dv.setUint16(4, 20, true); dv.setUint32(14, crc, true);
    dv.setUint32(18, f.data.length, true); dv.setUint32(22, f.data.length, true);
    dv.setUint16(26, name.length, true); dv.setUint16(28, extra.length, true);
    out.push(h, name, extra, f.data);
    const c = new Uint8Array(46);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true); cv.setUint16(4, 20, true); cv.setUint16(6, 20, true); cv.setUint32(16, crc, true);
    cv.setUint32(20, f.data.length, true); cv.setUint32(24, f.data.length, true); cv.setUint16(28, name.length, true); cv.setUint32(42, offset, true);
    central.push(c, name);
    offset += 30 + name.length + extra.length + f.data.length;
    if (offset >= 2 ** 32) throw new CheckpointError('torch writer: archives over 4 GiB (ZIP64) are not written; save in safetensors instead', { op: 'serializeTorch' });
  }
  const cdSize = central.reduce((a, b) => a + b.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true); ev.setUint16(8, files.length, true); ev.setUint16(10, files.length, true);
  ev.setUint32(12, cdSize, true); ev.setUint32(16, offset, true);
  return [...out, ...central, end];
}

/** The bytes of a torch.save file holding `root` (chunks, to write in order). */
export function serializeTorch(root: unknown, archiveName = 'archive'): Uint8Array[] {
  const w = new PickleWriter();
  w.value(root);
  const files = [{ name: `${archiveName}/data.pkl`, data: w.finish() }];
  w.storages.forEach((s, i) => files.push({ name: `${archiveName}/data/${i}`, data: s }));
  files.push({ name: `${archiveName}/version`, data: new TextEncoder().encode('3\n') });
  return zipStored(files);
}
