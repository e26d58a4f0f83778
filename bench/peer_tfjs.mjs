// The TF.js-WebGPU peer on the same Dawn adapter (its own process and device): times each case it is given
// as JSON (argv[2]) and prints one `PEER {"id", "ms"}` line per case. The same timing rule as ours: warm-up,
// then samples of k back-to-back calls ending with a readback; median.
import { tf } from './tfjs_webgpu.mjs';

const cases = JSON.parse(process.argv[2]);
const reps = Number(process.argv[3] ?? 3);
const rnd = (shape) => tf.randomNormal(shape, 0, 1, 'float32', 1);

async function time(fn) {
  const run = async (k) => { let o = null; for (let i = 0; i < k; i++) { if (o) o.dispose(); o = fn(); } await o.data(); o.dispose(); };
  await run(1);
  let t0 = performance.now(); await run(1); const first = performance.now() - t0;
  const k = Math.max(1, Math.min(64, Math.ceil(40 / Math.max(first, 0.01))));
  const s = [];
  for (let r = 0; r < reps; r++) { t0 = performance.now(); await run(k); s.push((performance.now() - t0) / k); }
  s.sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

for (const c of cases) {
  let fn, inputs = [];
  if (c.kind === 'matmul') {
    const a = rnd([c.M, c.K]), b = rnd(c.transB ? [c.N, c.K] : [c.K, c.N]);
    inputs = [a, b]; fn = () => tf.matMul(a, b, false, c.transB);
  } else if (c.kind === 'attention') {
    const q = rnd([c.B, c.H, c.T, c.dh]), k = rnd([c.B, c.H, c.T, c.dh]), v = rnd([c.B, c.H, c.T, c.dh]);
    const s = tf.scalar(1 / Math.sqrt(c.dh));
    inputs = [q, k, v, s]; fn = () => tf.tidy(() => tf.matMul(tf.softmax(tf.mul(tf.matMul(q, k, false, true), s)), v));
  } else if (c.kind === 'layernorm') {
    const x = rnd([c.B, c.T, c.D]), sh = rnd([c.B, 1, c.D]), sc = rnd([c.B, 1, c.D]);
    inputs = [x, sh, sc];
    fn = () => tf.tidy(() => { const m = tf.moments(x, -1, true); return tf.add(tf.mul(tf.div(tf.sub(x, m.mean), tf.sqrt(tf.add(m.variance, 1e-6))), tf.add(sc, 1)), sh); });
  } else if (c.kind === 'gelu') {
    const x = rnd([c.n]);
    inputs = [x]; fn = () => tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(tf.mul(0.7978845608, tf.add(x, tf.mul(0.044715, tf.pow(x, 3))))))));
  } else if (c.kind === 'add') {
    const a = rnd([c.n]), b = rnd([c.n]);
    inputs = [a, b]; fn = () => tf.add(a, b);
  } else if (c.kind === 'neg') {
    const a = rnd([c.n]);
    inputs = [a]; fn = () => tf.neg(a);
  } else if (c.kind === 'conv') {
    const x = rnd([c.B, c.H, c.W, c.C]), w = rnd([c.K, c.K, c.C, c.Co]);
    inputs = [x, w]; fn = () => tf.conv2d(x, w, 1, 'same');
  }
  const ms = await time(fn);
  for (const t of inputs) t.dispose();
  process.stdout.write(`PEER ${JSON.stringify({ id: c.id, ms })}\n`);
}
process.exit(0);
