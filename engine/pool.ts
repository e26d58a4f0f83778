// GPU buffer pool by size class. Released buffers are reused by later allocations of the same class; dispatch
// order on the queue makes reuse safe even while earlier dispatches that read the buffer are still pending.

export interface MemoryStats {
  /** Bytes of GPU buffers currently owned by live tensors (capacity of their size class). */
  liveBytes: number;
  liveBuffers: number;
  /** Bytes held by the pool for reuse. */
  pooledBytes: number;
  pooledBuffers: number;
  /** The most bytes live at once since the pool was made or `resetPeak()`. */
  peakLiveBytes: number;
}

const STORAGE_USAGE = 0x80 /* STORAGE */ | 0x04 /* COPY_SRC */ | 0x08; /* COPY_DST */

/** Size class: powers of two up to 1 MiB, above that multiples of an eighth of the power of two (≤ 12.5% waste). */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, bytes);
  const p = 2 ** Math.ceil(Math.log2(b));
  if (p <= 1 << 20) return p;
  const step = p / 16;
  return Math.ceil(b / step) * step;
}

/** What the pool needs of the device: creating buffers, and destroying them once no pending work uses them. */
export interface BufferSource {
  createBuffer(bytes: number, usage: number, label: string): GPUBuffer;
  destroyAfterSubmit(buf: GPUBuffer): void;
}

export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private live = 0;
  private peak = 0;
  private liveCount = 0;
  private pooled = 0;
  private pooledCount = 0;
  /** Upper bound on pooled bytes; beyond it released buffers are destroyed. */
  maxPooledBytes = 2 ** 31;

  constructor(private readonly gpu: BufferSource) {}

  acquire(bytes: number, label: string): GPUBuffer {
    const cls = sizeClass(bytes);
    const list = this.free.get(cls);
    let buf = list?.pop();
    if (buf) {
      this.pooled -= cls;
      this.pooledCount--;
    } else {
      buf = this.gpu.createBuffer(cls, STORAGE_USAGE, label);
    }
    this.live += cls;
    this.peak = Math.max(this.peak, this.live);
    this.liveCount++;
    return buf;
  }

  release(buf: GPUBuffer): void {
    const cls = buf.size;
    this.live -= cls;
    this.liveCount--;
    if (this.pooled + cls > this.maxPooledBytes) {
      this.gpu.destroyAfterSubmit(buf);
      return;
    }
    let list = this.free.get(cls);
    if (!list) this.free.set(cls, (list = []));
    list.push(buf);
    this.pooled += cls;
    this.pooledCount++;
  }

  /** Destroys every pooled (unused) buffer. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) this.gpu.destroyAfterSubmit(b);
    this.free.clear();
    this.pooled = 0;
    this.pooledCount = 0;
  }

  stats(): MemoryStats {
    return { liveBytes: this.live, liveBuffers: this.liveCount, pooledBytes: this.pooled, pooledBuffers: this.pooledCount, peakLiveBytes: this.peak };
  }

  /** Starts a new peak measurement from the bytes live now. */
  resetPeak(): void { this.peak = this.live; }
}
