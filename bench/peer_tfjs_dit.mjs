// The TensorFlow.js-WebGPU peer for `dit bench --peers`: a DiT (adaLN-Zero, the config given as JSON in
// argv[2]) written in TF.js ops, on the same Dawn adapter in its own process and device. Prints
// `PEER {"forward_ms", "train_step_ms"}`: forward at the batch, and a training step (forward, MSE loss,
// gradients of every weight through tf.variableGrads, AdamW in tf ops). Same timing rule as ours: a warm-up
// call, then the median of `reps` calls, each ending with a readback. Weights are small random values (not
// adaLN-Zero's zeros) so every branch computes.
import { tf } from './tfjs_webgpu.mjs';

const c = JSON.parse(process.argv[2]);
const reps = Number(process.argv[3] ?? 3);
const { hidden: D, depth, heads, patch: p, inChannels: C, inputSize: I, classes: K, batch: B } = c;
const G = I / p, T = G * G, F = 4 * D, Co = 2 * C;

let seed = 7;
const vars = [];
const param = (shape, scale) => { const v = tf.variable(tf.randomNormal(shape, 0, scale, 'float32', seed++)); vars.push(v); return v; };
const lin = (i, o) => ({ w: param([i, o], 1 / Math.sqrt(i)), b: param([o], 0.02) });
const W = {
  x: lin(C * p * p, D), t1: lin(256, D), t2: lin(D, D), y: param([K + 1, D], 0.02), fin: lin(D, p * p * Co), finAda: lin(D, 2 * D),
  blocks: Array.from({ length: depth }, () => ({ ada: lin(D, 6 * D), qkv: lin(D, 3 * D), proj: lin(D, D), fc1: lin(D, F), fc2: lin(F, D) })),
};
const pos = tf.tensor(Float32Array.from({ length: T * D }, (_, i) => { const m = Math.floor(i / D), k = i % D, q = D / 4, r = Math.floor(m / G), cc = m % G, j = k % q, w = 1 / 10000 ** (j / q); return [Math.sin(cc * w), Math.cos(cc * w), Math.sin(r * w), Math.cos(r * w)][Math.floor(k / q)]; }), [1, T, D]);

const linear = (x, l) => tf.add(tf.matMul(x, l.w), l.b);
const silu = (x) => tf.mul(x, tf.sigmoid(x));
const gelu = (x) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(tf.mul(0.7978845608, tf.add(x, tf.mul(0.044715, tf.mul(tf.mul(x, x), x)))))));
const ln = (x) => { const m = tf.moments(x, -1, true); return tf.mul(tf.sub(x, m.mean), tf.rsqrt(tf.add(m.variance, 1e-6))); };
const modulate = (x, sh, sc) => tf.add(tf.mul(x, tf.add(tf.expandDims(sc, 1), 1)), tf.expandDims(sh, 1));

function forward(x, t, y) {
  // Patchify [B, C, I, I] → [B, T, C·p·p] (channel, i, j), then the patch embedding.
  const patches = tf.reshape(tf.transpose(tf.reshape(x, [B, C, G, p, G, p]), [0, 2, 4, 1, 3, 5]), [B * T, C * p * p]);
  let h = tf.add(tf.reshape(linear(patches, W.x), [B, T, D]), pos);
  const freqs = tf.exp(tf.mul(tf.range(0, 128, 1, 'float32'), -Math.log(10000) / 128));
  const args = tf.mul(tf.expandDims(t, 1), tf.expandDims(freqs, 0));
  const temb = linear(silu(linear(tf.concat([tf.cos(args), tf.sin(args)], 1), W.t1)), W.t2);
  const cs = silu(tf.add(temb, tf.gather(W.y, y)));
  const Dh = D / heads;
  for (const b of W.blocks) {
    const [sh1, sc1, g1, sh2, sc2, g2] = tf.split(linear(cs, b.ada), 6, 1);
    const a = tf.reshape(modulate(ln(h), sh1, sc1), [B * T, D]);
    const qkv = tf.transpose(tf.reshape(linear(a, b.qkv), [B, T, 3, heads, Dh]), [2, 0, 3, 1, 4]);
    const [q, k, v] = tf.split(qkv, 3, 0).map((z) => tf.reshape(z, [B, heads, T, Dh]));
    const o = tf.reshape(tf.transpose(tf.matMul(tf.softmax(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(Dh))), v), [0, 2, 1, 3]), [B * T, D]);
    h = tf.add(h, tf.mul(tf.expandDims(g1, 1), tf.reshape(linear(o, b.proj), [B, T, D])));
    const m = tf.reshape(modulate(ln(h), sh2, sc2), [B * T, D]);
    h = tf.add(h, tf.mul(tf.expandDims(g2, 1), tf.reshape(linear(gelu(linear(m, b.fc1)), b.fc2), [B, T, D])));
  }
  const [fsh, fsc] = tf.split(linear(cs, W.finAda), 2, 1);
  const out = linear(tf.reshape(modulate(ln(h), fsh, fsc), [B * T, D]), W.fin);
  return tf.reshape(tf.transpose(tf.reshape(out, [B, G, G, p, p, Co]), [0, 5, 1, 3, 2, 4]), [B, Co, I, I]);
}

const x = tf.randomNormal([B, C, I, I], 0, 1, 'float32', 1), target = tf.randomNormal([B, Co, I, I], 0, 1, 'float32', 2);
const t = tf.tensor1d(Array.from({ length: B }, (_, i) => (i * 97) % 1000), 'float32'), y = tf.tensor1d(Array.from({ length: B }, (_, i) => i % K), 'int32');
const m1 = vars.map((v) => tf.variable(tf.zerosLike(v))), m2 = vars.map((v) => tf.variable(tf.zerosLike(v)));
let step = 0;
function trainStep() {
  step++;
  const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(tf.sub(forward(x, t, y), target))), vars);
  tf.tidy(() => {
    const b1 = 0.9, b2 = 0.999, lr = 1e-4;
    vars.forEach((v, i) => {
      const g = grads[v.name];
      m1[i].assign(tf.add(tf.mul(m1[i], b1), tf.mul(g, 1 - b1)));
      m2[i].assign(tf.add(tf.mul(m2[i], b2), tf.mul(tf.square(g), 1 - b2)));
      const mh = tf.div(m1[i], 1 - b1 ** step), vh = tf.div(m2[i], 1 - b2 ** step);
      v.assign(tf.sub(v, tf.mul(tf.div(mh, tf.add(tf.sqrt(vh), 1e-8)), lr)));
    });
  });
  Object.values(grads).forEach((g) => g.dispose());
  return value;
}

async function time(f) {
  const once = async () => { const t0 = performance.now(); const o = f(); await o.data(); o.dispose(); return performance.now() - t0; };
  await once();
  const s = [];
  for (let r = 0; r < reps; r++) s.push(await once());
  return s.sort((a, b) => a - b)[Math.floor(s.length / 2)];
}

const forwardMs = await time(() => tf.tidy(() => forward(x, t, y)));
process.stderr.write(`tfjs forward ${forwardMs.toFixed(0)} ms\n`);
const trainMs = process.argv[4] === 'no-train' ? null : await time(trainStep);
process.stdout.write(`PEER ${JSON.stringify({ forward_ms: forwardMs, train_step_ms: trainMs })}\n`);
process.exit(0);
