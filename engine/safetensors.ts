// safetensors read (F32, F16, BF16, F64, I32, I64, and the small integer types) and write, single files and
// sharded checkpoints with an `.index.json`. Parsing works on bytes (browser or Node); the file helpers at
// the bottom go through engine/node.ts. Malformed input gets an error naming the file and the problem.
// Every file written here records the CRC-32 of its data section in the metadata (`data_crc32`), and every
// read checks it when present, so a corrupt checkpoint or latent cache is reported as such instead of as a
// training that diverged (files without it, such as other tools' files, load as before).
import { bf16ToF32, f16ToF32 } from './half.js';
import { crc32 } from './checksum.js';
import { CheckpointError, NonFiniteError, type ErrorDetails } from './errors.js';
import { nodeHelpers } from './runtime.js';

export type StDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
const ELEM: Record<StDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
const FLOAT_DTYPES: readonly StDtype[] = ['F64', 'F32', 'F16', 'BF16'];
/** The metadata key holding the CRC-32 (8 hex digits) of the data section. */
const CHECKSUM_KEY = 'data_crc32';

export interface StEntry { dtype: StDtype; shape: number[]; begin: number; end: number }

/** A safetensors file (or sharded index) that cannot be read: a CheckpointError. */
export class SafetensorsError extends CheckpointError {
  override name = 'SafetensorsError';
  constructor(message: string, details: ErrorDetails = {}) { super(message, details); }
}

/** A parsed safetensors file: entries plus zero-copy access to the raw bytes. */
export class Safetensors {
  readonly entries = new Map<string, StEntry>();
  readonly metadata: Record<string, string>;
  private readonly dataStart: number;

  constructor(readonly bytes: Uint8Array, readonly source = '<bytes>') {
    const fail = (msg: string): never => { throw new SafetensorsError(`${source}: ${msg}`, { file: source }); };
    if (bytes.byteLength < 8) fail(`truncated: ${bytes.byteLength} bytes, not even the 8-byte header length`);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const n = Number(dv.getBigUint64(0, true));
    if (n > bytes.byteLength - 8) fail(`truncated or not safetensors: header length ${n} exceeds the file (${bytes.byteLength} bytes)`);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
    } catch (e) {
      throw new SafetensorsError(`${source}: malformed header (not JSON): ${(e as Error).message}`, { file: source, cause: e });
    }
    if (!header || typeof header !== 'object' || Array.isArray(header)) fail('malformed header: not a JSON object');
    this.dataStart = 8 + n;
    const dataLen = bytes.byteLength - this.dataStart;
    const meta = header.__metadata__;
    this.metadata = meta && typeof meta === 'object' ? (meta as Record<string, string>) : {};
    for (const [name, v] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const e = v as { dtype?: string; shape?: number[]; data_offsets?: number[] };
      if (!e || typeof e.dtype !== 'string' || !(e.dtype in ELEM)) fail(`tensor '${name}': unknown dtype ${JSON.stringify(e?.dtype)}`);
      if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) fail(`tensor '${name}': bad shape ${JSON.stringify(e.shape)}`);
      if (!Array.isArray(e.data_offsets) || e.data_offsets.length !== 2) fail(`tensor '${name}': bad data_offsets`);
      const [begin, end] = e.data_offsets!;
      const dtype = e.dtype as StDtype;
      const want = e.shape!.reduce((a, b) => a * b, 1) * ELEM[dtype];
      if (end - begin !== want) fail(`tensor '${name}': ${end - begin} bytes for ${dtype} ${JSON.stringify(e.shape)} (needs ${want})`);
      if (begin < 0 || end > dataLen) fail(`truncated: tensor '${name}' ends at byte ${end} of a ${dataLen}-byte data section`);
      this.entries.set(name, { dtype, shape: e.shape!, begin, end });
    }
    const recorded = this.metadata[CHECKSUM_KEY];
    if (recorded !== undefined) {
      const actual = crc32(bytes.subarray(this.dataStart)).toString(16).padStart(8, '0');
      if (actual !== recorded) fail(`data checksum mismatch — the file is corrupt (CRC-32 of the data ${actual}, recorded ${recorded})`);
    }
  }

  keys(): string[] { return [...this.entries.keys()]; }
  has(name: string): boolean { return this.entries.has(name); }

  entry(name: string): StEntry {
    const e = this.entries.get(name);
    if (!e) throw new SafetensorsError(`${this.source}: no tensor '${name}'`, { file: this.source });
    return e;
  }

  /** The raw bytes of a tensor (a view, no copy). */
  raw(name: string): Uint8Array {
    const e = this.entry(name);
    return this.bytes.subarray(this.dataStart + e.begin, this.dataStart + e.end);
  }

  /** A typed view of the stored data when aligned (zero-copy), else an aligned copy. */
  view(name: string): Float64Array | Float32Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array {
    const e = this.entry(name);
    const r = this.raw(name);
    const size = ELEM[e.dtype];
    const aligned = (r.byteOffset % size) === 0 ? r : r.slice();
    const n = r.byteLength / size;
    switch (e.dtype) {
      case 'F64': return new Float64Array(aligned.buffer, aligned.byteOffset, n);
      case 'F32': return new Float32Array(aligned.buffer, aligned.byteOffset, n);
      case 'F16': case 'BF16': return new Uint16Array(aligned.buffer, aligned.byteOffset, n);
      case 'I64': return new BigInt64Array(aligned.buffer, aligned.byteOffset, n);
      case 'I32': return new Int32Array(aligned.buffer, aligned.byteOffset, n);
      case 'I16': return new Int16Array(aligned.buffer, aligned.byteOffset, n);
      case 'I8': return new Int8Array(aligned.buffer, aligned.byteOffset, n);
      default: return new Uint8Array(aligned.buffer, aligned.byteOffset, n);
    }
  }

  /** The tensor as float32 (F32 zero-copy when aligned; other float and integer types converted). */
  f32(name: string): Float32Array {
    const e = this.entry(name);
    const v = this.view(name);
    if (e.dtype === 'F32') return v as Float32Array;
    if (e.dtype === 'F16') return f16ToF32(v as Uint16Array);
    if (e.dtype === 'BF16') return bf16ToF32(v as Uint16Array);
    if (e.dtype === 'I64') return Float32Array.from(v as BigInt64Array, (x) => Number(x));
    return Float32Array.from(v as ArrayLike<number>);
  }

  /**
   * A tensor of weights or latents as float32: refuses integer and boolean dtypes (not values to compute
   * with) and non-finite values (one NaN spreads to every output), naming the file, tensor and element.
   */
  finiteF32(name: string): Float32Array {
    const { dtype } = this.entry(name);
    if (!FLOAT_DTYPES.includes(dtype)) throw new SafetensorsError(`${this.source}: tensor '${name}' is ${dtype}, not a float type (${FLOAT_DTYPES.join(', ')})`, { file: this.source });
    const data = this.f32(name);
    const i = firstNonFinite(data);
    if (i >= 0) throw new SafetensorsError(`${this.source}: tensor '${name}' holds ${data[i]} at element ${i}: the file's values must be finite`, { file: this.source });
    return data;
  }

  /** The tensor as float64 (exact for F64, widened otherwise). */
  f64(name: string): Float64Array {
    const e = this.entry(name);
    if (e.dtype === 'F64') return this.view(name) as Float64Array;
    return Float64Array.from(this.f32(name));
  }

  /** Integer tensors (I64/I32/…) as numbers. */
  ints(name: string): number[] {
    const v = this.view(name);
    return Array.from(v as ArrayLike<number | bigint>, (x) => Number(x));
  }

  shape(name: string): number[] { return this.entry(name).shape; }
}

/** The index of the first NaN or ±inf in `data`, or -1. */
export function firstNonFinite(data: ArrayLike<number>): number {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return i;
  return -1;
}

/** A JSON metadata entry, parsed; a malformed one is an error naming the file and the key. */
export function metadataJson<T>(metadata: Record<string, string>, key: string, source: string): T | undefined {
  if (metadata[key] === undefined) return undefined;
  try {
    return JSON.parse(metadata[key]) as T;
  } catch (e) {
    throw new SafetensorsError(`${source}: metadata '${key}' is not valid JSON (${(e as Error).message})`, { file: source, cause: e });
  }
}

// ------------------------------------------------------------------------------------------ writing
export interface StWriteTensor { shape: readonly number[]; data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint16Array; dtype?: StDtype }

function dtypeOf(t: StWriteTensor): StDtype {
  if (t.dtype) return t.dtype;
  if (t.data instanceof Float64Array) return 'F64';
  if (t.data instanceof Int32Array) return 'I32';
  if (t.data instanceof BigInt64Array) return 'I64';
  if (t.data instanceof Uint16Array) return 'F16';
  return 'F32';
}

/**
 * Throws a NonFiniteError naming the first tensor of `tensors` (float data) that holds NaN or ±inf: what
 * every trainer calls before saving, so that a diverged run never replaces good weights.
 */
export function refuseNonFinite(tensors: Map<string, StWriteTensor>, what: string): void {
  for (const [name, t] of tensors) {
    if (!(t.data instanceof Float32Array || t.data instanceof Float64Array)) continue;
    const i = firstNonFinite(t.data);
    if (i >= 0) throw new NonFiniteError(`${what}: '${name}' holds ${t.data[i]} at element ${i}; not saved`, { op: 'save' });
  }
}

/**
 * Serialises tensors (8-byte types first so every tensor is naturally aligned) with string metadata, plus
 * the CRC-32 of the data section (`data_crc32`).
 */
export function serializeSafetensors(tensors: Map<string, StWriteTensor> | Record<string, StWriteTensor>, metadata: Record<string, string> = {}): Uint8Array[] {
  const list = [...(tensors instanceof Map ? tensors : new Map(Object.entries(tensors)))];
  list.sort((a, b) => ELEM[dtypeOf(b[1])] - ELEM[dtypeOf(a[1])]);
  const chunks = list.map(([, t]) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  const crc = chunks.reduce((c, b) => crc32(b, c), 0);
  const header: Record<string, unknown> = { __metadata__: { ...metadata, [CHECKSUM_KEY]: crc.toString(16).padStart(8, '0') } };
  let off = 0;
  for (const [name, t] of list) {
    const dt = dtypeOf(t);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new SafetensorsError(`serialize: '${name}' has ${t.data.length} values for shape ${JSON.stringify(t.shape)}`);
    const bytes = n * ELEM[dt];
    header[name] = { dtype: dt, shape: [...t.shape], data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + new TextEncoder().encode(json).byteLength) % 8)) % 8);
  const hbytes = new TextEncoder().encode(json);
  const head = new Uint8Array(8 + hbytes.byteLength);
  new DataView(head.buffer).setBigUint64(0, BigInt(hbytes.byteLength), true);
  head.set(hbytes, 8);
  return [head, ...chunks];
}

// ------------------------------------------------------------------------------------------ files (Node)
/** Reads a safetensors file. */
export async function readSafetensors(file: string): Promise<Safetensors> {
  const { readFileBytes } = await nodeHelpers('readSafetensors');
  return new Safetensors(await readFileBytes(file), file);
}

/** Writes a safetensors file atomically (temp file, then rename). */
export async function writeSafetensors(file: string, tensors: Map<string, StWriteTensor> | Record<string, StWriteTensor>, metadata: Record<string, string> = {}): Promise<void> {
  const { writeFileAtomic } = await nodeHelpers('writeSafetensors');
  await writeFileAtomic(file, serializeSafetensors(tensors, metadata));
}

/** A set of safetensors files seen as one: a single file, or the shards listed by an `.index.json`. */
export class TensorSource {
  constructor(readonly files: Safetensors[], private readonly where: Map<string, Safetensors>, readonly source: string) {}
  keys(): string[] { return [...this.where.keys()]; }
  has(k: string): boolean { return this.where.has(k); }
  file(k: string): Safetensors {
    const f = this.where.get(k);
    if (!f) throw new SafetensorsError(`${this.source}: no tensor '${k}'`, { file: this.source });
    return f;
  }
  f32(k: string): Float32Array { return this.file(k).f32(k); }
  finiteF32(k: string): Float32Array { return this.file(k).finiteF32(k); }
  shape(k: string): number[] { return this.file(k).shape(k); }
  get metadata(): Record<string, string> { return this.files[0]?.metadata ?? {}; }
}

/** Parses a sharded index (`{"metadata": {...}, "weight_map": {name: file}}`) given a shard reader. */
export async function loadSharded(indexText: string, indexName: string, readShard: (file: string) => Promise<Safetensors>): Promise<TensorSource> {
  let idx: { weight_map?: Record<string, string> };
  try {
    idx = JSON.parse(indexText);
  } catch (e) {
    throw new SafetensorsError(`${indexName}: malformed index (not JSON): ${(e as Error).message}`, { file: indexName, cause: e });
  }
  if (!idx.weight_map || typeof idx.weight_map !== 'object') throw new SafetensorsError(`${indexName}: no "weight_map" object`, { file: indexName });
  const shards = new Map<string, Safetensors>();
  const where = new Map<string, Safetensors>();
  for (const [name, file] of Object.entries(idx.weight_map)) {
    let sh = shards.get(file);
    if (!sh) {
      sh = await readShard(file);
      shards.set(file, sh);
    }
    if (!sh.has(name)) throw new SafetensorsError(`${indexName}: '${name}' is mapped to ${file}, which does not contain it`, { file: indexName });
    where.set(name, sh);
  }
  return new TensorSource([...shards.values()], where, indexName);
}

/** Opens a `.safetensors` file or a sharded `.index.json` (Node). */
export async function openTensors(file: string): Promise<TensorSource> {
  const node = await nodeHelpers('openTensors');
  if (file.endsWith('.json')) {
    const dir = node.dirnameOf(file);
    return loadSharded(await node.readText(file), file, (shard) => readSafetensors(node.joinPath(dir, shard)));
  }
  const st = await readSafetensors(file);
  return new TensorSource([st], new Map(st.keys().map((k) => [k, st])), file);
}
