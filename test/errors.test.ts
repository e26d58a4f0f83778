// The errors users catch: each is an instance of its class (and of DitError), with a message that names the
// op, the shapes or the file and says what to do. Device creation and loss run in a child process, which
// has no device yet and may destroy its own.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DitError, ShapeError, DeviceError, CheckpointError, DisposedTensorError, GpuError, SafetensorsError, TorchLoadError,
  Tensor, scope, backward, matmul, add, mse, sum, launch, gpu, Safetensors, serializeSafetensors, loadTorchCheckpoint,
  readSafetensors, Module, Linear, Generator,
} from '../engine.js';
import { readWeights, weightsFromBytes, ditFromWeights, DiT } from '../dit/index.js';
import { device, t, read, REFERENCE_DIR } from './helpers.js';

const BUILD = fileURLToPath(new URL('..', import.meta.url));

/** Runs `fn`, expects it to throw `cls` with a message matching `re`, returns the error. */
function throwsOf<E extends Error>(fn: () => unknown, cls: new (...a: never[]) => E, re: RegExp): E {
  try {
    fn();
  } catch (e) {
    expect(e, `${(e as Error).message}`).to.be.instanceOf(cls);
    expect(e).to.be.instanceOf(DitError);
    expect((e as Error).message).to.match(re);
    expect((e as Error).name).to.equal(cls.name);
    return e as E;
  }
  throw new Error(`expected ${cls.name} matching ${re}, nothing was thrown`);
}

async function rejectsOf<E extends Error>(p: Promise<unknown>, cls: new (...a: never[]) => E, re: RegExp): Promise<E> {
  try {
    await p;
  } catch (e) {
    expect(e, `${(e as Error).message}`).to.be.instanceOf(cls);
    expect(e).to.be.instanceOf(DitError);
    expect((e as Error).message).to.match(re);
    return e as E;
  }
  throw new Error(`expected ${cls.name} matching ${re}, the promise resolved`);
}

describe('typed errors', () => {
  before(device);

  it('ShapeError: shapes, dtypes and arguments an op cannot take, before any GPU work', () => {
    const e = throwsOf(() => matmul(t([1, 2, 3, 4, 5, 6], [2, 3]), t([1, 2, 3, 4, 5, 6, 7, 8], [4, 2])), ShapeError, /^matmul: inner dimensions differ: \[2,3\] · \[4,2\] \(3 vs 4\)/);
    expect(e.op).to.equal('matmul');
    throwsOf(() => add(t([1, 2, 3, 4, 5, 6], [2, 3]), t([1, 2, 3, 4], [4])), ShapeError, /add: shapes \[2,3\] and \[4\] cannot be broadcast/);
    throwsOf(() => Tensor.from([1, 2, 3], [2, 2]), ShapeError, /Tensor.from: 3 values do not fill shape \[2,2\] \(4 elements\)/);
    throwsOf(() => backward(t([1, 2], [2])), ShapeError, /backward: tensor \[2\] does not require grad/);
    throwsOf(() => matmul(t([1, 2, 3, 4], [2, 2]), t([1, 2, 3, 4], [2, 2]), { variant: 'nope' }), ShapeError, /matmul: unknown variant 'nope' \(rb\{R\}x\{C\}/);
    throwsOf(() => scope(() => Promise.resolve(1)), ShapeError, /use scopeAsync\(fn\)/);
    const model = new DiT('DiT-S/2', { inputSize: 8, depth: 1, hiddenSize: 64, numHeads: 2, numClasses: 3 });
    throwsOf(() => model.forward(Tensor.from(new Float32Array(2 * 4 * 36), [2, 4, 6, 6]), [1, 2], [0, 1]), ShapeError, /DiT.forward: x must be \[B, 4, 8, 8\], got \[2,4,6,6\]/);
    model.dispose();
  });

  it('an item() of a many-element tensor says to use data()', async () => {
    const x = t([1, 2], [2]);
    await rejectsOf(x.item(), ShapeError, /item\(\): tensor \[2\] has 2 elements, not 1; use data\(\)/);
    x.dispose();
  });

  it('DisposedTensorError: use after dispose() or after the scope that made it, with what to do', () => {
    const a = t([1, 2, 3], [3]);
    a.name = 'a';
    a.dispose();
    throwsOf(() => add(a, a), DisposedTensorError, /tensor \[3\] f32 'a' was used after dispose\(\).*return it from the scope or keep\(\) it/);
    let inner: Tensor | null = null;
    scope(() => { inner = t([1], [1]); return null; });
    throwsOf(() => inner!.buffer, DisposedTensorError, /was used after dispose\(\) \(or after the scope\(\) that made it ended\)/);
  });

  it('DeviceError: adapter limits and kernels that do not compile, and the device goes on working', async () => {
    const g = gpu();
    throwsOf(() => Tensor.empty([g.maxBufferBytes]), DeviceError, /bytes exceeds the adapter's maxBufferSize \(\d+\); use smaller tensors or batches/);
    await g.sync();
    const out = Tensor.empty([4]);
    // A user kernel with a WGSL error: reported at the next sync point, naming the kernel.
    const bad = '@group(0) @binding(0) var<uniform> p: vec4u;\n@group(0) @binding(1) var<storage, read_write> y: array<f32>;\n@compute @workgroup_size(1) fn main() { y[0] = no_such_function(); }';
    launch('my-kernel', bad, [out], [1], Uint32Array.of(1, 0, 0, 0));
    await rejectsOf(g.sync('test'), DeviceError, /kernel 'my-kernel' failed to compile/);
    await g.sync().catch(() => undefined); // errors the invalid command buffer may still report
    out.dispose();
    const x = t([1, 2], [2]);
    const y = add(x, x);
    expect(Array.from(await read(y))).to.deep.equal([2, 4]);
    x.dispose(); y.dispose();
  });

  it('CheckpointError: missing, truncated and malformed files, names and shapes that do not fit', async () => {
    const missing = await rejectsOf(readWeights('/nonexistent/dit.safetensors'), CheckpointError, /\/nonexistent\/dit.safetensors: no such file/);
    expect(missing.file).to.equal('/nonexistent/dit.safetensors');
    const bytes = Buffer.concat(serializeSafetensors({ a: { shape: [2], data: new Float32Array([1, 2]) } }));
    const st = throwsOf(() => new Safetensors(bytes.subarray(0, bytes.length - 4), 'w.safetensors'), SafetensorsError, /w.safetensors: truncated: tensor 'a' ends at byte 8 of a 4-byte data section/);
    expect(st).to.be.instanceOf(CheckpointError);
    expect(st.file).to.equal('w.safetensors');
    const pt = await fs.readFile(path.join(REFERENCE_DIR, 'dit_tiny_p2.pt'));
    const tl = await rejectsOf(loadTorchCheckpoint(new Uint8Array(pt.subarray(0, pt.length >> 1)), 'half.pt'), TorchLoadError, /^half.pt: /);
    expect(tl).to.be.instanceOf(CheckpointError);
    // The same file as bytes (a browser's path) reads the same.
    expect((await weightsFromBytes(new Uint8Array(pt), 'dit_tiny_p2.pt')).tensors.size).to.equal((await readWeights(path.join(REFERENCE_DIR, 'dit_tiny_p2.pt'))).tensors.size);
    // A model that does not fit the file.
    class Tiny extends Module {
      readonly fc = this.module('fc', new Linear(2, 3, new Generator(0)));
    }
    const m = new Tiny();
    const e = throwsOf(() => m.loadStateDict(new Map([['fc.weight', { shape: [3, 3], data: new Float32Array(9) }], ['fc.bias', { shape: [3], data: new Float32Array(3) }]]), { source: 'tiny.safetensors' }),
      CheckpointError, /loadStateDict: shape mismatch for 'fc.weight' \(from tiny.safetensors\): checkpoint \[3,3\], model \[3,2\]/);
    expect(e.file).to.equal('tiny.safetensors');
    m.dispose();
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dit-errors-'));
    await fs.writeFile(path.join(dir, 'x.safetensors'), bytes);
    await rejectsOf(readWeights(path.join(dir, 'x.safetensors')).then((w) => ditFromWeights(w)), CheckpointError, /cannot infer the DiT config: no 'x_embedder.proj.weight' tensor/);
    expect((await readSafetensors(path.join(dir, 'x.safetensors'))).keys()).to.deep.equal(['a']);
    await fs.rm(dir, { recursive: true });
  });

  it('GpuError, the old name, is still the base class', () => {
    const e = throwsOf(() => Tensor.from([1], [2]), ShapeError, /Tensor.from/);
    expect(e).to.be.instanceOf(GpuError);
    throwsOf(() => sum(mse(t([1], [1]), t([1, 2], [2]))), ShapeError, /mse: shapes \[1\] and \[2\] differ/);
  });

  it('DeviceError: no adapter, no device yet, and a lost device (closeDevice + getDevice recovers)', function () {
    this.timeout(60000);
    // A fresh process: no device yet, and free to destroy its own.
    const script = `
      const m = await import(${JSON.stringify(path.join(BUILD, 'engine.js'))});
      const out = {};
      const grab = async (k, f) => { try { await f(); out[k] = null; } catch (e) { out[k] = { name: e.name, device: e instanceof m.DeviceError, message: e.message }; } };
      await grab('noDevice', () => m.Tensor.from([1], [1]));
      await grab('noAdapter', () => m.getDevice({ gpu: { requestAdapter: async () => null } }));
      const g = await m.getDevice();
      g.device.destroy();
      await g.device.lost;
      await grab('lost', () => m.add(m.Tensor.from([1], [1]), m.Tensor.from([1], [1])).data());
      await m.closeDevice();
      await m.getDevice();
      out.recovered = Array.from(await m.add(m.Tensor.from([1], [1]), m.Tensor.from([2], [1])).data());
      await m.closeDevice();
      console.log(JSON.stringify(out));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60000 });
    expect(r.status, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, { name: string; device: boolean; message: string } | number[]>;
    const err = (k: string) => out[k] as { name: string; device: boolean; message: string };
    expect(err('noDevice')).to.include({ name: 'DeviceError', device: true });
    expect(err('noDevice').message).to.match(/no WebGPU device yet: await getDevice\(\) first/);
    expect(err('noAdapter')).to.include({ name: 'DeviceError', device: true });
    expect(err('noAdapter').message).to.match(/No WebGPU adapter found.[\s\S]*mesa-vulkan-drivers/);
    expect(err('lost')).to.include({ name: 'DeviceError', device: true });
    expect(err('lost').message).to.match(/the WebGPU device was lost .*closeDevice\(\) then getDevice\(\)/);
    expect(out.recovered).to.deep.equal([3]);
  });
});
