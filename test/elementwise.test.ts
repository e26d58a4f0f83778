import { expect } from 'chai';
import { UNARY, unary, binary, BINARY, where, map, full, expand, type UnaryOp, type BinaryOp } from '../kernels/elementwise.js';
import { device, randArray, uniformArray, expectClose, gradCheck, read, t } from './helpers.js';
import { gelu64, silu64 } from './ref.js';

const sig = (x: number) => 1 / (1 + Math.exp(-x));
/** float64 references for every unary op (p, q = 0.7, 1.3 where used). */
const REF: Record<UnaryOp, (x: number, p: number, q: number) => number> = {
  neg: (x) => -x, exp: Math.exp, log: Math.log, sqrt: Math.sqrt, rsqrt: (x) => 1 / Math.sqrt(x), tanh: Math.tanh,
  sigmoid: sig, abs: Math.abs, relu: (x) => Math.max(x, 0), square: (x) => x * x, silu: silu64, gelu: gelu64,
  scale: (x, p) => x * p, addScalar: (x, p) => x + p, powScalar: (x, p) => x ** p, clamp: (x, p, q) => Math.min(Math.max(x, p), q),
};
const POSITIVE = new Set<UnaryOp>(['log', 'sqrt', 'rsqrt', 'powScalar']);

describe('elementwise kernels', () => {
  before(device);

  for (const op of Object.keys(UNARY) as UnaryOp[]) {
    it(`${op} matches float64 on random inputs, forward and backward`, async () => {
      const n = 1031; // odd: exercises the scalar path
      const x = POSITIVE.has(op) ? uniformArray(n, 3, 0.2, 3) : randArray(n, 3, 2);
      const y = await read(unary(op, t(x, [n]), 0.7, 1.3));
      expectClose(y, Array.from(x, (v) => REF[op](v, 0.7, 1.3)), 2e-6, op);
      const small = POSITIVE.has(op) ? uniformArray(12, 5, 0.5, 2) : randArray(12, 5, 1.5).map((v) => (Math.abs(v - 0.7) < 0.05 || Math.abs(v - 1.3) < 0.05 || Math.abs(v) < 0.05 ? v + 0.2 : v));
      await gradCheck(([a]) => unary(op, a, 0.7, 1.3), [{ data: small, shape: [3, 4] }]);
    });
  }

  it('tanh and gelu stay finite for large |x|', async () => {
    const x = Float32Array.from([-100, -30, 30, 100]);
    expect(Array.from(await read(unary('tanh', t(x, [4]))))).to.deep.equal([-1, -1, 1, 1]);
    const g = await read(unary('gelu', t(x, [4])));
    expectClose(g, [0, 0, 30, 100], 1e-7, 'gelu');
  });

  for (const op of Object.keys(BINARY) as BinaryOp[]) {
    it(`${op} broadcasts like NumPy (same, suffix, scalar and general layouts) with gradients summed back`, async () => {
      const pos = op === 'pow' || op === 'div';
      const shapes: [number[], number[]][] = [[[5, 8], [5, 8]], [[3, 4, 6], [6]], [[3, 4, 6], [1]], [[3, 1, 5], [4, 1]], [[2, 3, 4], [2, 1, 4]]];
      const f = { add: (a: number, b: number) => a + b, sub: (a: number, b: number) => a - b, mul: (a: number, b: number) => a * b, div: (a: number, b: number) => a / b, pow: (a: number, b: number) => a ** b, maximum: Math.max, minimum: Math.min }[op];
      for (const [sa, sb] of shapes) {
        const na = sa.reduce((x, y) => x * y, 1), nb = sb.reduce((x, y) => x * y, 1);
        const a = pos ? uniformArray(na, 1, 0.5, 2) : randArray(na, 1), b = pos ? uniformArray(nb, 2, 0.5, 2) : randArray(nb, 2);
        const out = binary(op, t(a, sa), t(b, sb));
        const os = out.shape;
        const got = await read(out);
        // NumPy-style index mapping on the host.
        const ref: number[] = [];
        const idx = (shape: number[], coord: number[]) => { let o = 0; const off = coord.length - shape.length; shape.forEach((d, i) => { o = o * d + (d === 1 ? 0 : coord[i + off]); }); return o; };
        const total = os.reduce((x, y) => x * y, 1);
        for (let i = 0; i < total; i++) {
          const c: number[] = []; let r = i;
          for (let d = os.length - 1; d >= 0; d--) { c.unshift(r % os[d]); r = Math.floor(r / os[d]); }
          ref.push(f(a[idx(sa, c)], b[idx(sb, c)]));
        }
        expectClose(got, ref, 2e-6, `${op} ${JSON.stringify(sa)}·${JSON.stringify(sb)}`);
        await gradCheck(([x, y]) => binary(op, x, y), [{ data: a, shape: sa }, { data: b, shape: sb }]);
      }
    });
  }

  it('where selects and routes gradients by the condition', async () => {
    const c = Float32Array.from([1, 0, 1, 0, 0, 1]);
    const a = randArray(6, 1), b = randArray(3, 2);
    const y = await read(where(t(c, [2, 3]), t(a, [2, 3]), t(b, [3])));
    expectClose(y, Array.from(c, (v, i) => (v ? a[i] : b[i % 3])), 0, 'where');
    await gradCheck(([x, z]) => where(t(c, [2, 3]), x, z), [{ data: a, shape: [2, 3] }, { data: b, shape: [3] }]);
  });

  it('rejects shapes that do not broadcast, naming the op and shapes', () => {
    expect(() => binary('add', t(randArray(6, 1), [2, 3]), t(randArray(4, 1), [4]))).to.throw(/add: shapes \[2,3\] and \[4\] cannot be broadcast/);
  });

  it('rejects a disposed tensor with a clear error', () => {
    const a = t(randArray(4, 1), [4]);
    a.dispose();
    expect(() => unary('exp', a)).to.throw(/was used after dispose\(\)/);
  });

  it('rejects integer tensors in float ops', () => {
    const i = Tensor_i32();
    expect(() => unary('exp', i)).to.throw(/expected f32 inputs, got i32/);
  });

  it('map evaluates in place and full/expand fill', async () => {
    const x = full([3, 5], 2.5);
    map('o * p + T(1.0)', {}, { out: x, p: 2 });
    expect(Array.from(await read(x))).to.deep.equal(new Array(15).fill(6));
    const e = expand(t([1, 2, 3], [3, 1]), [3, 2]);
    expect(Array.from(await read(e))).to.deep.equal([1, 1, 2, 2, 3, 3]);
  });
});

import { Tensor } from '../engine/tensor.js';
function Tensor_i32(): Tensor { return Tensor.from(Int32Array.from([1, 2, 3]), [3]); }
