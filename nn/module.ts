// Modules with named parameters whose nested names come out as PyTorch's (`blocks.0.attn.qkv.weight`), and
// state-dict save/load with strict name and shape checks.
import { Tensor, fmtShape, noGrad, numel, type Shape } from '../engine/tensor.js';
import { gpu } from '../engine/device.js';
import { CheckpointError } from '../engine/errors.js';
import { map } from '../kernels/elementwise.js';
import { rand, randn, Generator } from '../kernels/random.js';

/** Host-side tensor data, as read from a checkpoint. */
export interface HostTensor { shape: number[]; data: Float32Array | Int32Array }

export class Module {
  training = true;
  private readonly ownParams = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();

  /** Registers a parameter (trainable unless `trainable: false`, e.g. a fixed position embedding). */
  param<T extends Tensor>(name: string, t: T, trainable = true): T {
    t.keep();
    t.setRequiresGrad(trainable);
    this.ownParams.set(name, t);
    return t;
  }

  /** Registers a child module under `name` (its parameters become `name.…`). */
  module<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    return m;
  }

  /** Every parameter (trainable or not) in state-dict order: own first, then children in registration order. */
  namedTensors(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this.ownParams) out.push([prefix + n, t]);
    for (const [n, m] of this.children) out.push(...m.namedTensors(`${prefix}${n}.`));
    return out;
  }

  /** Trainable parameters with their names. */
  namedParameters(): [string, Tensor][] {
    return this.namedTensors().filter(([, t]) => t.requiresGrad);
  }

  parameters(): Tensor[] { return this.namedParameters().map(([, t]) => t); }

  /** Number of elements of the trainable parameters (or of all, with `includeFixed`). */
  numParameters(includeFixed = false): number {
    return this.namedTensors().filter(([, t]) => includeFixed || t.requiresGrad).reduce((a, [, t]) => a + t.size, 0);
  }

  /** Names each parameter tensor after its state-dict key (for error messages). */
  protected nameParameters(): void {
    for (const [n, t] of this.namedTensors()) t.name = n;
  }

  stateDict(): Map<string, Tensor> { return new Map(this.namedTensors()); }

  /** Every tensor read back to the host, by name, as files store them (one readback per tensor). */
  async hostStateDict(): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [n, t] of this.namedTensors()) out.set(n, { shape: [...t.shape], data: (await t.data()) as Float32Array });
    return out;
  }

  /**
   * Copies `sd` into the parameters. Strict: every key must exist with the same shape, and (unless
   * `strict: false`) every parameter must be present. Errors name the offending keys.
   */
  loadStateDict(sd: Map<string, HostTensor | Tensor>, opts: { strict?: boolean; source?: string } = {}): void {
    const strict = opts.strict ?? true;
    const where = opts.source ? ` (from ${opts.source})` : '';
    // Names and shapes that do not fit the model are a checkpoint problem (CheckpointError), as are bad files.
    const check = (ok: boolean, op: string, msg: string): void => { if (!ok) throw new CheckpointError(`${op}: ${msg}`, { op, file: opts.source }); };
    const own = new Map(this.namedTensors());
    const unexpected = [...sd.keys()].filter((k) => !own.has(k));
    const missing = [...own.keys()].filter((k) => !sd.has(k));
    check(unexpected.length === 0, 'loadStateDict', `unexpected key${unexpected.length > 1 ? 's' : ''}${where}: ${unexpected.slice(0, 8).join(', ')}${unexpected.length > 8 ? ` … (${unexpected.length})` : ''}`);
    if (strict) check(missing.length === 0, 'loadStateDict', `missing key${missing.length > 1 ? 's' : ''}${where}: ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ` … (${missing.length})` : ''}`);
    for (const [k, v] of sd) {
      const t = own.get(k)!;
      const same = v.shape.length === t.shape.length && v.shape.every((d, i) => d === t.shape[i]);
      check(same, 'loadStateDict', `shape mismatch for '${k}'${where}: checkpoint ${fmtShape(v.shape)}, model ${fmtShape(t.shape)}`);
    }
    for (const [k, v] of sd) {
      const t = own.get(k)!;
      if (v instanceof Tensor) noGrad(() => map('x', { x: v }, { label: 'loadStateDict', out: t }));
      else {
        check(v.data instanceof Float32Array, 'loadStateDict', `'${k}' must be float data`);
        gpu().upload(t.buffer, v.data);
      }
    }
  }

  train(mode = true): this {
    this.training = mode;
    for (const m of this.children.values()) m.train(mode);
    return this;
  }

  eval(): this { return this.train(false); }

  zeroGrad(): void {
    for (const t of this.parameters()) { t.grad?.dispose(); t.grad = null; }
  }

  /** Frees every parameter (and gradient). */
  dispose(): void {
    for (const [, t] of this.namedTensors()) t.dispose();
  }
}

/** Child modules indexed 0..n-1 (`blocks.0`, `blocks.1`, …), as torch's ModuleList. */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items;
    items.forEach((m, i) => this.module(String(i), m));
  }
}

// ------------------------------------------------------------------------------------------ initialisers
/** Parameter initialisation on the GPU from a seeded stream (reproducible across adapters). */
export const init = {
  zeros(shape: Shape): Tensor { return map('T(0.0)', {}, { label: 'init', out: Tensor.empty(shape, 'f32', 'param') }); },
  uniform(shape: Shape, lo: number, hi: number, gen: Generator): Tensor {
    const u = rand(shape, gen.seed, gen.offset);
    gen.offset += numel(shape);
    return map('o * (q - p) + p', {}, { label: 'init', p: lo, q: hi, out: u });
  },
  normal(shape: Shape, std: number, gen: Generator): Tensor {
    const n = randn(shape, gen.seed, 'f32', gen.offset);
    gen.offset += numel(shape);
    return map('o * p', {}, { label: 'init', p: std, out: n });
  },
  /** Glorot/Xavier uniform with torch's fan computation (fan_in = shape[1]·receptive, fan_out = shape[0]·receptive). */
  xavierUniform(shape: Shape, gen: Generator): Tensor {
    const receptive = numel(shape.slice(2));
    const fanIn = shape[1] * receptive, fanOut = shape[0] * receptive;
    const bound = Math.sqrt(6 / (fanIn + fanOut));
    return init.uniform(shape, -bound, bound, gen);
  },
  /** torch.nn.Linear / Conv2d default: kaiming_uniform(a=√5) → U(±1/√fan_in). */
  torchDefault(shape: Shape, fanIn: number, gen: Generator): Tensor {
    const b = 1 / Math.sqrt(fanIn);
    return init.uniform(shape, -b, b, gen);
  },
  fromHost(shape: Shape, data: Float32Array): Tensor { return Tensor.from(data, shape); },
};
