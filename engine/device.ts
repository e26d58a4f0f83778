// One WebGPU device for the whole engine, in Node (Dawn, through engine/node.ts) and in browsers
// (navigator.gpu). It owns command recording (many dispatches per encoder, submitted in batches), the
// pipeline cache, the uniform arena, the buffer pool, and turns GPU errors into JavaScript errors.
import { BufferPool } from './pool.js';
import { DitError, DeviceError, ShapeError } from './errors.js';
import { isNode, nodeHelpers } from './runtime.js';

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isSoftware: boolean;
  features: string[];
  subgroupMinSize: number;
  subgroupMaxSize: number;
  limits: Record<string, number>;
  /** lavapipe (llvmpipe): the vector width its shaders are compiled to (32 × the subgroup size), else 0. */
  vectorBits: number;
  /** The trusted-kernel Dawn toggles this device runs with (Node only; engine/node.ts TRUSTED_TOGGLES). */
  toggles: string[];
}

export interface DispatchArgs {
  /** Op name: labels the pipeline and bind group, names the op in errors and profiles. */
  label: string;
  /** WGSL source. Pipelines are cached by source. Binding 0 is the uniform block when `params` is given. */
  code: string;
  /** Storage buffers in binding order (after the uniform block, if any). */
  buffers: { buffer: GPUBuffer; bytes: number }[];
  /** Uniform block contents (32-bit words), at most 256 bytes. */
  params?: Uint32Array;
  workgroups: [number, number?, number?];
  /** Extra detail for the profile key (e.g. shape and variant). */
  detail?: string;
}

/** Limits requested from the adapter instead of WebGPU's small defaults. */
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ', 'maxComputeWorkgroupsPerDimension', 'maxStorageBuffersPerShaderStage',
] as const;
const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;

const UNIFORM_SLOT = 256; // minUniformBufferOffsetAlignment is at most 256
const ARENA_SLOTS = 1024;
/** Uploads recorded while work is pending go through one staging arena per submit (bytes). */
const UPLOAD_ARENA_BYTES = 4 << 20;
const MAX_DISPATCHES_PER_SUBMIT = 256;
/** Bind groups kept for reuse (least recently used dropped first). */
const BIND_GROUP_CACHE = 4096;

/** @deprecated The base class of the engine's errors, under its old name: use DitError (or the specific classes of engine/errors.ts). */
export const GpuError = DitError;
/** @deprecated Use DitError. */
export type GpuError = DitError;

interface Pipeline { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout; id: number; bindings: number; uniform: boolean }

export class Gpu {
  readonly device: GPUDevice;
  readonly adapter: AdapterSummary;
  readonly pool: BufferPool;
  readonly hasF16: boolean;
  readonly hasSubgroups: boolean;
  readonly hasTimestamps: boolean;
  readonly maxBindingBytes: number;
  readonly maxBufferBytes: number;
  readonly maxInvocations: number;
  /** Filled with NaN on allocation when set (tests): an output element a kernel forgot to write shows up. */
  poison = false;

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private dispatches = 0;
  private readonly arena: GPUBuffer;
  private readonly arenaData = new Uint32Array((ARENA_SLOTS * UNIFORM_SLOT) / 4);
  private arenaUsed = 0; // slots
  private readonly uploadArena: GPUBuffer;
  private readonly uploadData = new Uint8Array(UPLOAD_ARENA_BYTES);
  private uploadUsed = 0; // bytes
  private readonly pipelines = new Map<string, Pipeline>();
  /** Bind groups by (pipeline, buffers, sizes): a training loop binds the same pooled buffers step after step. */
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  private readonly errors: string[] = [];
  private readonly pendingChecks: Promise<void>[] = [];
  private lostReason: string | null = null;
  /** Buffers referenced by recorded-but-unsubmitted commands: destroyed right after the next submit. */
  private readonly destroyQueue: GPUBuffer[] = [];
  /** The WGSL of the last dispatch (the dispatch-cost benchmark binds its pipeline by hand). */
  lastCode = '';
  /** Dispatch, submit, readback and upload counts (profiling aid). */
  readonly stats = { dispatches: 0, submits: 0, readbacks: 0, uploads: 0 };
  /** GPU time per kernel label (ms) and dispatch count, collected while `profiling` (timestamp queries). */
  readonly profile = new Map<string, { ms: number; count: number }>();
  private profiling = false;
  private querySet: GPUQuerySet | null = null;
  private queryLabels: string[] = [];
  private readonly profileReads: Promise<void>[] = [];

  /** The GPU entry point is held for the device's lifetime: Dawn tears its instance down when it is collected. */
  constructor(readonly instance: GPU, device: GPUDevice, adapter: AdapterSummary) {
    this.device = device;
    this.adapter = adapter;
    const f = new Set(adapter.features);
    this.hasF16 = device.features.has('shader-f16') && f.has('shader-f16');
    this.hasSubgroups = device.features.has('subgroups');
    this.hasTimestamps = device.features.has('timestamp-query');
    this.maxBindingBytes = device.limits.maxStorageBufferBindingSize;
    this.maxBufferBytes = device.limits.maxBufferSize;
    this.maxInvocations = device.limits.maxComputeInvocationsPerWorkgroup;
    this.pool = new BufferPool(this);
    this.arena = device.createBuffer({
      label: 'uniform-arena', size: ARENA_SLOTS * UNIFORM_SLOT,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.uploadArena = device.createBuffer({ label: 'upload-arena', size: UPLOAD_ARENA_BYTES, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    device.addEventListener('uncapturederror', (ev) => {
      this.errors.push((ev as GPUUncapturedErrorEvent).error.message);
    });
    void device.lost.then((info) => {
      this.lostReason = `${info.reason}: ${info.message}`;
    });
  }

  /** Throws if the device was lost or an asynchronous GPU error was reported. */
  checkAlive(op: string): void {
    if (this.lostReason !== null) throw new DeviceError(`${op}: the WebGPU device was lost (${this.lostReason}); await closeDevice() then getDevice() for a new one (the old device's tensors are gone)`, { op });
    if (this.errors.length) {
      const msg = this.errors.splice(0).join('\n');
      throw new DeviceError(`GPU error (reported after op '${op}'): ${msg}${/out of memory/.test(msg) ? '\n  (free tensors with dispose() or scope(), use smaller batches, or see memory() for what is live)' : ''}`, { op });
    }
  }

  /** Creates a GPU buffer; out-of-memory and validation errors are reported at the next sync point. */
  createBuffer(bytes: number, usage: number, label: string): GPUBuffer {
    if (bytes > this.maxBufferBytes) {
      throw new DeviceError(`${label}: ${bytes} bytes exceeds the adapter's maxBufferSize (${this.maxBufferBytes}); use smaller tensors or batches`, { op: label });
    }
    this.device.pushErrorScope('out-of-memory');
    const buffer = this.device.createBuffer({ label, size: bytes, usage });
    this.pendingChecks.push(this.device.popErrorScope().then((e) => {
      if (e) this.errors.push(`out of memory allocating ${bytes} bytes for '${label}': ${e.message}`);
    }));
    return buffer;
  }

  /**
   * The cached pipeline for a shader source. Its bind-group layout is made from the shader's declarations
   * (group 0: the uniform block with a dynamic offset into the uniform arena, then storage buffers), so one
   * bind group serves every dispatch on the same buffers whatever its uniforms.
   */
  pipeline(code: string, label: string): Pipeline {
    let p = this.pipelines.get(code);
    if (!p) {
      const entries: GPUBindGroupLayoutEntry[] = [];
      for (const m of code.matchAll(/@group\(0\)\s*@binding\((\d+)\)\s*var<(uniform|storage)(?:\s*,\s*(read_write|read))?>/g)) {
        const binding = Number(m[1]);
        const type: GPUBufferBindingType = m[2] === 'uniform' ? 'uniform' : m[3] === 'read_write' ? 'storage' : 'read-only-storage';
        entries.push({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type, hasDynamicOffset: type === 'uniform' } });
      }
      entries.sort((a, b) => a.binding - b.binding);
      if (entries.some((e, i) => e.binding !== i)) throw new ShapeError(`kernel '${label}': bindings of group 0 must be numbered 0, 1, 2, … (got ${entries.map((e) => e.binding).join(', ')})`, { op: label });
      this.device.pushErrorScope('validation');
      const layout = this.device.createBindGroupLayout({ label, entries });
      const module = this.device.createShaderModule({ label, code });
      const pipeline = this.device.createComputePipeline({ label, layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }), compute: { module, entryPoint: 'main' } });
      this.pendingChecks.push(this.device.popErrorScope().then((e) => {
        if (e) this.errors.push(`kernel '${label}' failed to compile: ${e.message}`);
      }));
      p = { pipeline, layout, id: this.pipelines.size + 1, bindings: entries.length, uniform: entries[0]?.buffer?.type === 'uniform' };
      this.pipelines.set(code, p);
    }
    return p;
  }

  private bufferId(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) this.bufferIds.set(b, (id = this.nextBufferId++));
    return id;
  }

  get pipelineCount(): number { return this.pipelines.size; }

  private beginPass(label?: string): GPUComputePassEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder({ label: 'dit-webgpu' });
    if (this.profiling && label !== undefined) {
      // One pass per dispatch, bracketed by timestamps.
      if (this.pass) { this.pass.end(); this.pass = null; }
      const i = this.queryLabels.length;
      this.queryLabels.push(label);
      this.pass = this.encoder.beginComputePass({ timestampWrites: { querySet: this.querySet!, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
      return this.pass;
    }
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    return this.pass;
  }

  /**
   * Starts (or stops) per-kernel GPU timing with timestamp queries: each dispatch gets its own pass. Results
   * accumulate in `profile` (read them after `await sync()`). Needs the timestamp-query feature.
   */
  setProfiling(on: boolean): void {
    if (on && !this.hasTimestamps) throw new DeviceError('profiling needs the timestamp-query feature, which this adapter lacks', { op: 'setProfiling' });
    this.flush();
    this.profiling = on;
    if (on && !this.querySet) this.querySet = this.device.createQuerySet({ type: 'timestamp', count: 2 * MAX_DISPATCHES_PER_SUBMIT });
  }

  /** Records the timestamp resolve; returns what to run after the submit (mapping the results). */
  private resolveProfile(enc: GPUCommandEncoder): () => void {
    const n = this.queryLabels.length;
    const bytes = 16 * n;
    const resolve = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const staging = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    enc.resolveQuerySet(this.querySet!, 0, 2 * n, resolve, 0);
    enc.copyBufferToBuffer(resolve, 0, staging, 0, bytes);
    const labels = this.queryLabels.splice(0);
    this.destroyQueue.push(resolve);
    return () => this.profileReads.push(staging.mapAsync(GPUMapMode.READ).then(() => {
      const t = new BigUint64Array(staging.getMappedRange());
      labels.forEach((l, i) => {
        const e = this.profile.get(l) ?? { ms: 0, count: 0 };
        e.ms += Number(t[2 * i + 1] - t[2 * i]) / 1e6;
        e.count++;
        this.profile.set(l, e);
      });
      staging.unmap();
      staging.destroy();
    }));
  }

  private endPass(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder({ label: 'dit-webgpu' });
    if (this.pass) { this.pass.end(); this.pass = null; }
    return this.encoder;
  }

  /** Records one compute dispatch into the shared encoder. */
  dispatch(a: DispatchArgs): void {
    if (this.lostReason !== null) this.checkAlive(a.label);
    const [x, y = 1, z = 1] = a.workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const maxWg = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxWg || y > maxWg || z > maxWg) {
      throw new DeviceError(`${a.label}: dispatch [${x},${y},${z}] exceeds maxComputeWorkgroupsPerDimension ${maxWg}; spread the work over y and z (kernels/util.ts grid())`, { op: a.label });
    }
    if (a.params && this.arenaUsed >= ARENA_SLOTS) this.flush();
    const p = this.pipeline(a.code, a.label);
    this.lastCode = a.code;
    const given = a.buffers.length + (a.params ? 1 : 0);
    if (given !== p.bindings || p.uniform !== !!a.params) {
      throw new ShapeError(`${a.label}: the kernel declares ${p.bindings} bindings${p.uniform ? ' (a uniform block first)' : ''}, the launch gave ${a.buffers.length} buffers${a.params ? ' and uniforms' : ''}`, { op: a.label });
    }
    let key = String(p.id);
    const sizes: number[] = [];
    for (const b of a.buffers) {
      if (b.bytes > this.maxBindingBytes) {
        throw new DeviceError(`${a.label}: a ${b.bytes}-byte operand exceeds the adapter's maxStorageBufferBindingSize (${this.maxBindingBytes} bytes); split the tensor`, { op: a.label });
      }
      // Round to 16 bytes (vec4 arrays) but never past the binding limit (2^31 − 4 on some GPUs).
      const size = Math.min(Math.max(16, Math.ceil(b.bytes / 16) * 16), this.maxBindingBytes - (this.maxBindingBytes % 4), b.buffer.size);
      sizes.push(size);
      key += `|${this.bufferId(b.buffer)}:${size}`;
    }
    const uniformSize = a.params ? Math.max(16, Math.ceil(a.params.length / 4) * 16) : 0;
    if (a.params) {
      if (a.params.length * 4 > UNIFORM_SLOT) throw new ShapeError(`${a.label}: uniform block over ${UNIFORM_SLOT} bytes`, { op: a.label });
      key += `|u${uniformSize}`;
    }
    let bindGroup = this.bindGroups.get(key);
    if (bindGroup) {
      this.bindGroups.delete(key);
    } else {
      const entries: GPUBindGroupEntry[] = [];
      if (a.params) entries.push({ binding: 0, resource: { buffer: this.arena, offset: 0, size: uniformSize } });
      a.buffers.forEach((b, i) => entries.push({ binding: entries.length, resource: { buffer: b.buffer, offset: 0, size: sizes[i] } }));
      bindGroup = this.device.createBindGroup({ label: a.label, layout: p.layout, entries });
      if (this.bindGroups.size >= BIND_GROUP_CACHE) this.bindGroups.delete(this.bindGroups.keys().next().value!);
    }
    this.bindGroups.set(key, bindGroup);
    let offsets: number[] | undefined;
    if (a.params) {
      const slot = this.arenaUsed++;
      this.arenaData.set(a.params, (slot * UNIFORM_SLOT) / 4);
      offsets = [slot * UNIFORM_SLOT];
    }
    const pass = this.beginPass(a.detail ? `${a.label} ${a.detail}` : a.label);
    pass.setPipeline(p.pipeline);
    pass.setBindGroup(0, bindGroup, offsets);
    pass.dispatchWorkgroups(x, y, z);
    this.dispatches++;
    this.stats.dispatches++;
    if (this.dispatches >= MAX_DISPATCHES_PER_SUBMIT) this.flush();
  }

  /** Submits everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    const enc = this.endPass();
    const afterSubmit = this.queryLabels.length ? this.resolveProfile(enc) : null;
    if (this.arenaUsed) this.device.queue.writeBuffer(this.arena, 0, this.arenaData, 0, (this.arenaUsed * UNIFORM_SLOT) / 4);
    if (this.uploadUsed) this.device.queue.writeBuffer(this.uploadArena, 0, this.uploadData, 0, this.uploadUsed);
    this.device.queue.submit([enc.finish()]);
    afterSubmit?.();
    this.stats.submits++;
    this.encoder = null;
    this.dispatches = 0;
    this.arenaUsed = 0;
    this.uploadUsed = 0;
    for (const b of this.destroyQueue.splice(0)) b.destroy();
  }

  destroyAfterSubmit(buf: GPUBuffer): void {
    if (this.encoder) this.destroyQueue.push(buf);
    else buf.destroy();
  }

  /** Copies `data` into `buffer` at `byteOffset`, ordered after every dispatch recorded so far. */
  upload(buffer: GPUBuffer, data: ArrayBufferView, byteOffset = 0): void {
    this.stats.uploads++;
    const bytes = data.byteLength;
    const src = new Uint8Array(data.buffer, data.byteOffset, bytes);
    if (!this.encoder) {
      // Nothing pending: the queue write is already in order.
      this.device.queue.writeBuffer(buffer, byteOffset, src, 0, bytes & ~3);
      if (bytes & 3) this.uploadTail(buffer, byteOffset, src);
      return;
    }
    // Pending dispatches may still read this (recycled) buffer: stage the bytes in this submit's upload
    // arena (written to the GPU just before the submit) and copy them in order through the encoder. No
    // buffer is created per upload: Dawn frees destroyed ones only when the event loop turns, and a loop
    // that records many steps without awaiting would exhaust the driver's allocations.
    const padded = Math.ceil(bytes / 4) * 4;
    if (padded > UPLOAD_ARENA_BYTES || this.uploadUsed + padded > UPLOAD_ARENA_BYTES) {
      this.flush();
      this.upload(buffer, data, byteOffset);
      this.stats.uploads--;
      return;
    }
    const off = this.uploadUsed;
    this.uploadData.set(src, off);
    this.uploadUsed += padded;
    this.endPass().copyBufferToBuffer(this.uploadArena, off, buffer, byteOffset, padded);
  }

  private uploadTail(buffer: GPUBuffer, byteOffset: number, src: Uint8Array): void {
    const whole = src.byteLength & ~3;
    const tail = new Uint8Array(4);
    tail.set(src.subarray(whole));
    this.device.queue.writeBuffer(buffer, byteOffset + whole, tail);
  }

  /** Reads `bytes` bytes of `buffer` back to the CPU (flushes the encoder). */
  async read(buffer: GPUBuffer, bytes: number, op = 'read'): Promise<ArrayBuffer> {
    this.checkAlive(op);
    const padded = Math.max(4, Math.ceil(bytes / 4) * 4);
    const staging = this.device.createBuffer({ label: 'readback', size: padded, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.endPass().copyBufferToBuffer(buffer, 0, staging, 0, padded);
    this.flush();
    this.stats.readbacks++;
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      await this.sync(op);
      throw new DeviceError(`${op}: readback failed: ${(e as Error).message}`, { op, cause: e });
    }
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    await this.sync(op);
    return out;
  }

  /** Waits for all submitted work and reports any GPU error. */
  async sync(op = 'sync'): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    await Promise.all(this.pendingChecks.splice(0));
    await Promise.all(this.profileReads.splice(0));
    this.checkAlive(op);
  }

  /** Bytes of one uniform slot, for kernels that pack several dispatches. */
  static readonly uniformSlotBytes = UNIFORM_SLOT;

  /** Waits for the queue, frees every buffer and destroys the device (the instance may then be collected). */
  async close(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone().catch(() => undefined);
    this.pool.trim();
    this.arena.destroy();
    this.uploadArena.destroy();
    this.device.destroy();
    await this.device.lost;
  }
}

let current: Gpu | null = null;
let pending: Promise<Gpu> | null = null;

export interface DeviceOptions {
  /** Extra Dawn toggles for Node (`create()` options), e.g. ['enable-dawn-features=allow_unsafe_apis']. */
  dawnOptions?: string[];
  powerPreference?: GPUPowerPreference;
  /**
   * The WebGPU entry point to use instead of `navigator.gpu` or Dawn: e.g. `create([])` of npm `webgpu` in
   * a Node bundle (after `Object.assign(globalThis, globals)`), or another implementation.
   */
  gpu?: GPU;
}

/** The engine's one device, created on first call (Dawn in Node, navigator.gpu in browsers). */
export function getDevice(opts: DeviceOptions = {}): Promise<Gpu> {
  if (current) return Promise.resolve(current);
  if (!pending) pending = createGpu(opts).then((g) => (current = g), (e) => { pending = null; throw e; });
  return pending;
}

/** Whether `getDevice()` has been called (and the device not closed since): GPU work may have begun. */
export function deviceRequested(): boolean {
  return current !== null || pending !== null;
}

/**
 * Finishes queued work and destroys the engine's device. Call before exiting a Node process: Dawn's
 * background threads must not be torn down mid-work by process.exit (that can segfault).
 */
export async function closeDevice(): Promise<void> {
  const g = current ?? (pending ? await pending.catch(() => null) : null);
  current = null;
  pending = null;
  if (g) await g.close();
}

/** The device after `getDevice()` resolved; throws otherwise. Ops use this. */
export function gpu(): Gpu {
  if (!current) throw new DeviceError('no WebGPU device yet: await getDevice() first (and not after closeDevice())');
  return current;
}

const NO_ADAPTER_HELP = `No WebGPU adapter found.
  Node: Dawn needs a Vulkan driver. On Debian bookworm: add bookworm-backports and
    apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1   (Mesa >= 24, software 'lavapipe')
  (or run 'bash scripts/setup.sh', which does this); on Ubuntu/newer Debian: apt-get install mesa-vulkan-drivers libvulkan1;
  with a GPU, install its vendor's Vulkan driver.
  Browser: use a WebGPU-enabled browser (Chrome/Edge 113+, or Chromium with --enable-unsafe-webgpu), over https or localhost.`;

async function createGpu(opts: DeviceOptions): Promise<Gpu> {
  let gpuApi: GPU | undefined = opts.gpu ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  let toggles: string[] = [];
  if (!gpuApi && isNode) {
    const node = await nodeHelpers('getDevice');
    gpuApi = await node.loadDawn(opts.dawnOptions ?? []);
    toggles = node.dawnSetup.toggles;
  }
  if (!gpuApi) throw new DeviceError(NO_ADAPTER_HELP, { op: 'getDevice' });
  const adapter = await gpuApi.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  if (!adapter) throw new DeviceError(NO_ADAPTER_HELP, { op: 'getDevice' });
  const requiredLimits: Record<string, number> = {};
  for (const k of WANTED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[k];
    if (typeof v === 'number') requiredLimits[k] = v;
  }
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures, label: 'dit-webgpu' });
  const info = adapter.info;
  const limits: Record<string, number> = {};
  for (const k of WANTED_LIMITS) limits[k] = (device.limits as unknown as Record<string, number>)[k];
  const names = `${info.description} ${info.architecture} ${info.vendor} ${info.device}`;
  const subgroupMaxSize = (info as unknown as { subgroupMaxSize?: number }).subgroupMaxSize ?? 0;
  const summary: AdapterSummary = {
    vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description,
    isSoftware: /llvmpipe|lavapipe|swiftshader|software|cpu/i.test(names),
    features: [...adapter.features].sort(),
    subgroupMinSize: (info as unknown as { subgroupMinSize?: number }).subgroupMinSize ?? 0,
    subgroupMaxSize,
    limits,
    // llvmpipe runs one subgroup lane per 32-bit element of its native vector.
    vectorBits: /llvmpipe|lavapipe/i.test(names) ? 32 * subgroupMaxSize : 0,
    toggles,
  };
  return new Gpu(gpuApi, device, summary);
}

/** A short one-line adapter description, e.g. for benchmark tables. */
export function describeAdapter(a: AdapterSummary): string {
  const name = a.description || [a.vendor, a.architecture, a.device].filter(Boolean).join(' ') || 'unknown adapter';
  const notes = [a.isSoftware ? 'software' : '', a.vectorBits ? `${a.vectorBits}-bit` : '', a.toggles?.length ? 'trusted kernels' : ''].filter(Boolean);
  return `${name}${notes.length ? ` (${notes.join(', ')})` : ''}`;
}
