import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { Tensor, scope, keep, noGrad, memory } from '../engine/tensor.js';
import { backward } from '../engine/autograd.js';
import { Module, ModuleList, init } from '../nn/module.js';
import { AdamW, EMA } from '../nn/optim.js';
import { Safetensors, serializeSafetensors, readSafetensors, writeSafetensors, openTensors } from '../engine/safetensors.js';
import { crc32 } from '../engine/checksum.js';
import { linear } from '../kernels/matmul.js';
import { add, mul, gelu } from '../kernels/elementwise.js';
import { mse, sum } from '../kernels/reduce.js';
import { rand, randn, Generator } from '../kernels/random.js';
import { philoxUniform } from '../kernels/reference.js';
import { uniforms, launch } from '../kernels/util.js';
import { chooseLavapipeWidth, trustedToggles, dawnOptions, dawnSetup, TRUSTED_TOGGLES } from '../engine/node.js';
import { describeAdapter } from '../engine/device.js';
import { device, randArray, expectClose, read, t, REFERENCE_DIR } from './helpers.js';

const REF = REFERENCE_DIR;

class Linear extends Module {
  weight: Tensor; bias: Tensor;
  constructor(inF: number, outF: number, gen: Generator) {
    super();
    this.weight = this.param('weight', init.torchDefault([outF, inF], inF, gen));
    this.bias = this.param('bias', init.torchDefault([outF], inF, gen));
  }
  forward(x: Tensor, act?: 'gelu'): Tensor { return linear(x, this.weight, this.bias, { activation: act }); }
}

class MLP extends Module {
  layers: ModuleList<Linear>;
  constructor(gen: Generator) {
    super();
    this.layers = this.module('layers', new ModuleList([new Linear(8, 32, gen), new Linear(32, 4, gen)]));
  }
  forward(x: Tensor): Tensor { return this.layers.items[1].forward(this.layers.items[0].forward(x, 'gelu')); }
}

describe('device and tensors', () => {
  before(device);

  it('exposes the adapter, its features and the limits it requested', async () => {
    const g = await device();
    expect(g.adapter.description).to.be.a('string').and.not.empty;
    expect(g.adapter.features).to.be.an('array');
    // The device was given the adapter's own limits, not WebGPU's defaults (128 MiB per binding, 256 MiB per buffer).
    const adapter = await g.instance.requestAdapter({ powerPreference: 'high-performance' });
    expect(g.maxBindingBytes).to.equal(adapter!.limits.maxStorageBufferBindingSize);
    expect(g.maxBufferBytes).to.equal(adapter!.limits.maxBufferSize);
    expect(g.maxBindingBytes).to.be.at.least(2 ** 27);
  });

  it('Node: lavapipe\'s vector width and the trusted-kernel toggles, from the environment', async () => {
    // The user's LP_NATIVE_VECTOR_WIDTH wins; else DIT_LAVAPIPE_WIDTH (set for the driver); else the driver's default.
    const env = (e: Record<string, string>) => ({ ...e }) as NodeJS.ProcessEnv;
    let e = env({ LP_NATIVE_VECTOR_WIDTH: '256', DIT_LAVAPIPE_WIDTH: '512' });
    expect(chooseLavapipeWidth(e)).to.equal(256);
    e = env({ DIT_LAVAPIPE_WIDTH: '256' });
    expect(chooseLavapipeWidth(e)).to.equal(256);
    expect(e.LP_NATIVE_VECTOR_WIDTH).to.equal('256');
    e = env({ DIT_LAVAPIPE_WIDTH: '512' });
    expect(chooseLavapipeWidth(e)).to.equal(512);
    expect(e.LP_NATIVE_VECTOR_WIDTH).to.equal('512');
    e = env({});
    expect(chooseLavapipeWidth(e)).to.equal(null);
    expect(e.LP_NATIVE_VECTOR_WIDTH).to.equal(undefined);
    expect(() => chooseLavapipeWidth(env({ DIT_LAVAPIPE_WIDTH: '384' }))).to.throw(/256 or 512/);
    // DIT_TRUSTED_KERNELS=1 turns every toggle on; Dawn keeps one enable-dawn-features list, so they are merged.
    expect(trustedToggles(env({}))).to.deep.equal([]);
    expect(trustedToggles(env({ DIT_TRUSTED_KERNELS: '1' }))).to.deep.equal([...TRUSTED_TOGGLES]);
    expect(dawnOptions(['backend=vulkan', 'enable-dawn-features=dump_shaders'], ['disable_robustness'], env({ DIT_DAWN_OPTIONS: 'enable-dawn-features=allow_unsafe_apis;adapter=x' })))
      .to.deep.equal(['backend=vulkan', 'adapter=x', 'enable-dawn-features=disable_robustness,dump_shaders,allow_unsafe_apis']);
    expect(dawnOptions([], [], env({}))).to.deep.equal([]);
    // This device: the toggles in effect are reported with the adapter (and, on lavapipe, its width).
    const g = await device();
    expect(g.adapter.toggles).to.deep.equal(dawnSetup.toggles);
    if (/llvmpipe/.test(g.adapter.description)) expect(describeAdapter(g.adapter)).to.include(`${g.adapter.vectorBits}-bit`);
  });

  it('uploads and reads back f32 and i32 data exactly', async () => {
    const f = randArray(37, 1);
    expect(Array.from(await read(Tensor.from(f, [37])))).to.deep.equal(Array.from(f));
    const i = Int32Array.from([-3, 0, 7, 2 ** 30]);
    expect(Array.from(await Tensor.from(i, [4]).data())).to.deep.equal(Array.from(i));
  });

  it('a uniform block: the WGSL layout and the packer agree (scalars, vec4u, arrays, nested blocks)', async () => {
    const Inner = uniforms({ a: 'u32', b: 'f32' }, 'Inner');
    const U = uniforms({ n: 'u32', x: 'f32', v: 'vec4u', s: 'i32', arr: 'array<vec4u, 2>', in1: Inner, y: 'f32', in2: Inner });
    expect(U.wgsl).to.equal('struct Inner { a: u32, b: f32 }\nstruct P { n: u32, x: f32, v: vec4u, s: i32, arr: array<vec4u, 2>, @align(16) @size(16) in1: Inner, y: f32, @align(16) @size(16) in2: Inner }\n@group(0) @binding(0) var<uniform> u: P;');
    const values = { n: 7, x: 0.1, v: [1, 2, 3, 4], s: -5, arr: [5, 6, 7, 8, 9], in1: { a: 11, b: 1.5 }, y: -2.25, in2: { a: 12, b: 3.5 } };
    // A kernel that copies every field it reads, as f32, into out: the packer's offsets must be the shader's.
    const code = `${U.wgsl}
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1) fn main() {
  out[0] = f32(u.n); out[1] = u.x; out[2] = f32(u.v.x); out[3] = f32(u.v.w); out[4] = f32(u.s);
  out[5] = f32(u.arr[0].x); out[6] = f32(u.arr[1].x); out[7] = f32(u.arr[1].y); out[8] = f32(u.in1.a); out[9] = u.in1.b;
  out[10] = u.y; out[11] = f32(u.in2.a); out[12] = u.in2.b;
}`;
    const out = Tensor.empty([13]);
    launch('uniformLayout', code, [out], [1], U.pack(values));
    expect(Array.from(await out.data())).to.deep.equal([7, Math.fround(0.1), 1, 4, -5, 5, 9, 0, 11, 1.5, -2.25, 12, 3.5]);
    out.dispose();
    expect(() => U.pack({ ...values, x: undefined as unknown as number })).to.throw(/uniform P\.x needs a number/);
    expect(() => U.pack({ ...values, arr: [1, 2, 3, 4, 5, 6, 7, 8, 9] })).to.throw(/uniform P\.arr needs at most 8 numbers/);
  });

  it('rejects data that does not fill the shape', () => {
    expect(() => Tensor.from([1, 2, 3], [2, 2])).to.throw(/Tensor.from: 3 values do not fill shape \[2,2\]/);
  });

  it('scopes dispose what they created except returned and kept tensors', () => {
    const before = memory().liveBuffers;
    let kept: Tensor | null = null;
    const out = scope(() => {
      const a = t([1, 2, 3], [3]);
      const b = add(a, a);
      kept = keep(mul(b, b));
      return { b };
    });
    expect(out.b.disposed).to.equal(false);
    expect(kept!.disposed).to.equal(false);
    expect(memory().liveBuffers).to.equal(before + 2);
    out.b.dispose();
    kept!.dispose();
    expect(memory().liveBuffers).to.equal(before);
  });

  it('refuses a binding over the adapter limit with a clear error instead of corrupting it', async function () {
    const g = await device();
    const n = g.maxBindingBytes / 4 + 4;
    if (n * 4 > g.maxBufferBytes) {
      console.log(`        (skipped: a buffer over the ${g.maxBindingBytes}-byte binding limit exceeds this adapter's ${g.maxBufferBytes}-byte maxBufferSize, so no binding can exceed the limit)`);
      this.skip();
    }
    const big = Tensor.empty([n]);
    expect(() => add(big, big)).to.throw(/exceeds the adapter's maxStorageBufferBindingSize/);
    big.dispose();
    g.pool.trim();
  });

  it('a long training loop holds live GPU memory flat (500 steps of MLP forward, backward, AdamW)', async () => {
    const gen = new Generator(1);
    const model = new MLP(gen);
    const opt = new AdamW(model.parameters(), { lr: 1e-2 });
    const x = keep(randn([16, 8], 3)), y = keep(randn([16, 4], 4));
    const samples: { liveBytes: number; liveBuffers: number }[] = [];
    let first = 0, last = 0;
    for (let step = 0; step < 500; step++) {
      const loss = scope(() => {
        const l = mse(model.forward(x), y);
        backward(l);
        opt.step();
        opt.zeroGrad();
        return l;
      });
      if (step === 0) first = await loss.item();
      if (step === 499) last = await loss.item();
      loss.dispose();
      if (step >= 10 && step % 50 === 0) { await (await device()).sync(); samples.push(memory()); }
    }
    expect(last, 'the loss goes down').to.be.lessThan(first * 0.5);
    for (const s of samples) expect(s).to.deep.include({ liveBytes: samples[0].liveBytes, liveBuffers: samples[0].liveBuffers });
    model.dispose(); opt.dispose(); x.dispose(); y.dispose();
  });
});

describe('autograd', () => {
  before(device);

  it('accumulates gradients of a tensor used twice and across backward calls', async () => {
    const x = t([1, 2, 3], [3], true);
    backward(sum(mul(x, x))); // d/dx Σx² = 2x
    expect(Array.from(await read(x.grad!))).to.deep.equal([2, 4, 6]);
    backward(sum(add(x, x))); // + 2
    expect(Array.from(await read(x.grad!))).to.deep.equal([4, 6, 8]);
  });

  it('noGrad records nothing and backward on a freed graph is refused', () => {
    const x = t([1, 2], [2], true);
    const y = noGrad(() => mul(x, x));
    expect(y.requiresGrad).to.equal(false);
    const l = sum(mul(x, x));
    backward(l);
    expect(() => backward(l)).to.throw(/already backpropagated/);
    expect(() => backward(t([1], [1]))).to.throw(/does not require grad/);
    expect(() => backward(mul(x, x))).to.throw(/needs a one-element loss/);
  });

  it('releases saved tensors after backward', async () => {
    const w = t(randArray(64 * 64, 1), [64, 64], true);
    const base = memory().liveBuffers;
    const l = scope(() => sum(gelu(linear(gelu(linear(t(randArray(64 * 64, 2), [64, 64]), w)), w))));
    const during = memory().liveBuffers;
    backward(l);
    l.dispose();
    w.grad!.dispose(); w.grad = null;
    expect(during).to.be.greaterThan(base + 1);
    expect(memory().liveBuffers).to.equal(base);
  });
});

describe('modules and optimizers', () => {
  before(device);

  it('names nested parameters as PyTorch does and round-trips a state dict', async () => {
    const m = new MLP(new Generator(2));
    expect(m.namedParameters().map(([n]) => n)).to.deep.equal(['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias']);
    const sd = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [n, p] of m.stateDict()) sd.set(n, { shape: [...p.shape], data: randArray(p.size, n.length) });
    m.loadStateDict(sd);
    expect(Array.from(await read(m.layers.items[1].bias))).to.deep.equal(Array.from(sd.get('layers.1.bias')!.data));
  });

  it('loadStateDict names missing, unexpected and mis-shaped keys', () => {
    const m = new MLP(new Generator(2));
    const sd = new Map([...m.stateDict()].map(([n, p]) => [n, { shape: [...p.shape], data: new Float32Array(p.size) }]));
    sd.delete('layers.1.bias');
    expect(() => m.loadStateDict(sd)).to.throw(/missing key: layers.1.bias/);
    sd.set('layers.1.bias', { shape: [5], data: new Float32Array(5) });
    expect(() => m.loadStateDict(sd)).to.throw(/shape mismatch for 'layers.1.bias'.*checkpoint \[5\], model \[4\]/);
    sd.set('layers.9.weight', { shape: [1], data: new Float32Array(1) });
    expect(() => m.loadStateDict(sd)).to.throw(/unexpected key.*layers.9.weight/);
  });

  it('AdamW matches torch.optim.AdamW (weight decay, bias correction) over several steps', async () => {
    const n = 50;
    const p0 = randArray(n, 1), grads = [randArray(n, 2), randArray(n, 3), randArray(n, 4)];
    const p = t(p0, [n], true);
    const opt = new AdamW([p], { lr: 0.01, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.1 });
    const ref = Float64Array.from(p0), m = new Float64Array(n), v = new Float64Array(n);
    for (let s = 1; s <= 3; s++) {
      p.grad = keep(t(grads[s - 1], [n]));
      opt.step();
      opt.zeroGrad();
      for (let i = 0; i < n; i++) {
        const g = grads[s - 1][i];
        ref[i] *= 1 - 0.01 * 0.1;
        m[i] = 0.9 * m[i] + 0.1 * g;
        v[i] = 0.99 * v[i] + 0.01 * g * g;
        ref[i] -= (0.01 / (1 - 0.9 ** s)) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(1 - 0.99 ** s) + 1e-8);
      }
    }
    expectClose(await read(p), ref, 1e-6, 'adamw');
  });

  it('global-norm clipping scales gradients like clip_grad_norm_', async () => {
    const a = t([3, 4], [2], true);
    const opt = new AdamW([a], { lr: 1, weightDecay: 0, clipGradNorm: 1 });
    a.grad = keep(t([30, 40], [2]));
    opt.step();
    expectClose([await opt.lastGradNorm!.item()], [50], 1e-6, 'norm');
    // first Adam step moves each coordinate by lr·sign(g) regardless of scale: check the moments saw the clip
    const mm = await read(opt.moments(a)!.m);
    expectClose(mm, [0.1 * 30 / 50, 0.1 * 40 / 50], 1e-5, 'clipped moment');
  });

  it('EMA follows decay·ema + (1 − decay)·p', async () => {
    const p = t([1, 2], [2], true);
    const ema = new EMA([p], 0.9);
    noGrad(() => { const q = t([11, 12], [2]); add(q, q).dispose(); });
    p.grad = null;
    const upd = t([11, 12], [2]);
    const { map } = await import('../kernels/elementwise.js');
    map('x', { x: upd }, { out: p });
    ema.update();
    expectClose(await read(ema.shadow[0]), [2, 3], 1e-6, 'ema');
  });
});

describe('random numbers', () => {
  before(device);

  it('Philox draws are reproducible, offset-consistent and equal to the CPU twin', async () => {
    const a = await read(rand([1000], 42));
    const b = await read(rand([1000], 42));
    expect(Array.from(a)).to.deep.equal(Array.from(b));
    const tail = await read(rand([500], 42, 500));
    expect(Array.from(tail)).to.deep.equal(Array.from(a.subarray(500)));
    expect(Array.from(a)).to.deep.equal(Array.from(philoxUniform(1000, 42), Math.fround));
    expect(Array.from(await read(rand([10], 43)))).to.not.deep.equal(Array.from(a.subarray(0, 10)));
  });

  it('normal draws have mean 0 and variance 1', async () => {
    const n = 200000;
    const x = await read(randn([n], 7));
    const m = x.reduce((s, v) => s + v, 0) / n;
    const v = x.reduce((s, q) => s + (q - m) ** 2, 0) / n;
    expect(Math.abs(m)).to.be.lessThan(0.01);
    expect(Math.abs(v - 1)).to.be.lessThan(0.02);
    expect(x.every(Number.isFinite)).to.equal(true);
  });
});

describe('safetensors', () => {
  before(device);

  it('round-trips F32/F64/I32/I64/F16 tensors with metadata, aligned for zero-copy views', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'st-'));
    const file = path.join(dir, 'x.safetensors');
    const f32 = randArray(7, 1), f64 = Float64Array.from([1.5, -2.25, Math.PI]);
    await writeSafetensors(file, { a: { shape: [7], data: f32 }, b: { shape: [3], data: f64 }, c: { shape: [2], data: Int32Array.from([5, -6]) }, d: { shape: [2], data: BigInt64Array.from([1n, -2n]) }, e: { shape: [2], data: Uint16Array.from([0x3c00, 0xc000]) } }, { note: 'hi' });
    const st = await readSafetensors(file);
    expect(st.metadata).to.deep.equal({ note: 'hi', data_crc32: st.metadata.data_crc32 });
    expect(Array.from(st.f32('a'))).to.deep.equal(Array.from(f32));
    expect(Array.from(st.f64('b'))).to.deep.equal(Array.from(f64));
    expect(st.ints('c')).to.deep.equal([5, -6]);
    expect(st.ints('d')).to.deep.equal([1, -2]);
    expect(Array.from(st.f32('e'))).to.deep.equal([1, -2]);
    const v = st.view('a');
    expect(v.buffer).to.equal(st.bytes.buffer); // zero copy
    expect((await fs.readdir(dir)).filter((f) => f.includes('tmp'))).to.deep.equal([]);
  });

  it('records the CRC-32 of the data (zlib\'s, also in chunks) and calls a file whose data changed corrupt', () => {
    const bytes = Uint8Array.from({ length: 1003 }, (_, i) => (i * 37 + 11) & 0xff);
    expect(crc32(bytes)).to.equal(zlibCrc32(bytes));
    expect(crc32(bytes.subarray(500), crc32(bytes.subarray(0, 500)))).to.equal(zlibCrc32(bytes));
    const file = Buffer.concat(serializeSafetensors({ a: { shape: [3], data: Float32Array.of(1, 2, 3) } }));
    expect(new Safetensors(file).metadata.data_crc32).to.equal(zlibCrc32(file.subarray(file.length - 12)).toString(16).padStart(8, '0'));
    file[file.length - 1] ^= 1;
    expect(() => new Safetensors(file, 'f.safetensors')).to.throw(/^f\.safetensors: data checksum mismatch — the file is corrupt/);
  });

  it('reads every shared reference file and the sharded VAE weights', async () => {
    const files = (await fs.readdir(REF)).filter((f) => f.endsWith('.safetensors'));
    expect(files.length).to.be.greaterThan(8);
    for (const f of files) {
      const st = await readSafetensors(path.join(REF, f));
      for (const k of st.keys()) expect(st.f32(k).length).to.equal(st.shape(k).reduce((a, b) => a * b, 1));
    }
    const vae = await openTensors(path.join(REF, 'vae', 'vae_a.weights.index.json'));
    expect(vae.keys()).to.have.length(124);
    expect(vae.shape('encoder.conv_in.weight')).to.deep.equal([32, 3, 3, 3]);
    // F64 and I64 tables read exactly.
    const sch = await readSafetensors(path.join(REF, 'diffusion_schedules.safetensors'));
    expect(sch.ints('7.timestep_map')).to.deep.equal([0, 166, 333, 500, 666, 832, 999]);
  });

  it('names the file and the problem for truncated or malformed input', () => {
    const good = serializeSafetensors({ a: { shape: [4], data: randArray(4, 1) } });
    const bytes = new Uint8Array(good.reduce((n, c) => n + c.byteLength, 0));
    let off = 0;
    for (const c of good) { bytes.set(c, off); off += c.byteLength; }
    expect(() => new Safetensors(bytes.subarray(0, 5), 'f.st')).to.throw(/f.st: truncated: 5 bytes/);
    expect(() => new Safetensors(bytes.subarray(0, bytes.length - 4), 'f.st')).to.throw(/f.st: truncated: tensor 'a' ends at byte 16 of a 12-byte data section/);
    const bad = Uint8Array.from(bytes); bad[9] = 0x7b; bad[10] = 0x7b; // `{{{` opens the header: not JSON
    expect(() => new Safetensors(bad, 'f.st')).to.throw(/f.st: malformed header/);
    const huge = Uint8Array.from(bytes); new DataView(huge.buffer).setUint32(0, 1e9, true);
    expect(() => new Safetensors(huge, 'f.st')).to.throw(/f.st: truncated or not safetensors/);
  });

  it('names a missing shard', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sh-'));
    await fs.writeFile(path.join(dir, 'm.index.json'), JSON.stringify({ weight_map: { a: 'nope.safetensors' } }));
    let err = '';
    try { await openTensors(path.join(dir, 'm.index.json')); } catch (e) { err = (e as Error).message; }
    expect(err).to.match(/nope.safetensors: no such file/);
  });
});
