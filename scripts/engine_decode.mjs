// Decodes latents with the engine's VAE exactly as eval/samples.ts `sampleImages` does (vae.decode(z / scale),
// then toUint8), for checking scripts/torch_eval.py's decoder against the engine. Reads a float32 .npy
// [N, C, h, w]; writes OUT.npy (float32 decoder output) and OUT-u8.npy (uint8, as the PNGs hold it).
//   node scripts/engine_decode.mjs --vae weights/vae-synthetic.safetensors --latents z.npy --scale S --out /tmp/dec
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : def; };
const vaeFile = opt('vae', path.join(ROOT, 'weights/vae-synthetic.safetensors')), latFile = opt('latents'), out = opt('out', '/tmp/engine-decoded');
const S = Number(opt('scale', '1')), batch = Number(opt('batch', '200'));
if (!latFile) { process.stderr.write('usage: node scripts/engine_decode.mjs --vae FILE --latents Z.npy [--scale S] [--out PREFIX] [--batch B]\n'); process.exit(2); }

function readNpy(file) {
  const b = readFileSync(file), hl = b.readUInt16LE(8), header = b.subarray(10, 10 + hl).toString('latin1');
  if (!/'descr': '<f4'/.test(header) || /'fortran_order': True/.test(header)) throw new Error(`${file}: expected a C-order float32 .npy (${header.trim()})`);
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const data = new Float32Array(b.buffer.slice(b.byteOffset + 10 + hl, b.byteOffset + b.length));
  return { shape, data };
}
function writeNpy(file, descr, shape, bytes) {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat((64 - ((11 + header.length) % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  Buffer.from([0x93, ...Buffer.from('NUMPY'), 1, 0]).copy(pre);
  pre.writeUInt16LE(header.length, 8);
  writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)]));
}

const { getDevice, closeDevice } = await import(path.join(ROOT, 'build/engine/device.js'));
const { Tensor, scope, noGrad } = await import(path.join(ROOT, 'build/engine/tensor.js'));
const { scale } = await import(path.join(ROOT, 'build/kernels/elementwise.js'));
const { loadVae } = await import(path.join(ROOT, 'build/vae/checkpoint.js'));
const { toUint8 } = await import(path.join(ROOT, 'build/eval/samples.js'));

await getDevice();
const vae = await loadVae(vaeFile);
vae.eval();
const z = readNpy(latFile), [N, ...rest] = z.shape, per = rest.reduce((a, b) => a * b, 1);
let floats = null, shape = null;
const t0 = performance.now();
for (let s = 0; s < N; s += batch) {
  const n = Math.min(batch, N - s);
  const zt = Tensor.from(z.data.slice(s * per, (s + n) * per), [n, ...rest]);
  const x = scope(() => noGrad(() => vae.decode(scale(zt, 1 / S))));
  zt.dispose();
  const d = await x.data();
  if (!floats) { shape = [N, ...x.shape.slice(1)]; floats = new Float32Array(N * (d.length / n)); }
  floats.set(d, s * (d.length / n));
  x.dispose();
}
const secs = (performance.now() - t0) / 1000;
writeNpy(`${out}.npy`, '<f4', shape, floats);
writeNpy(`${out}-u8.npy`, '|u1', shape, Uint8Array.from(floats, toUint8));
process.stderr.write(`decoded ${N} latents in ${secs.toFixed(1)} s → ${out}.npy, ${out}-u8.npy\n`);
await closeDevice();
