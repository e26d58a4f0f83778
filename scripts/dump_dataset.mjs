// Writes a dataset split exactly as the engine loads it (build/data/readers.js `loadDataset`) to an .npz that
// Python reads with numpy.load: images (uint8 [N, C, H, W]), labels (uint8 [N]) and meta (the UTF-8 bytes of
// a JSON object: data, split, classes, shape, the split's engine fingerprint and, for the judge's check, the
// train split's fingerprint). scripts/torch_eval.py runs it once per dataset (cache: out/eval-cache/).
//   node scripts/dump_dataset.mjs --data synthetic [--split test] [--out out/eval-cache/synthetic-test.npz]
// Needs the build (npx tsc -p .). The synthetic set is generated (and cached in .cache/data) on first use.
import { mkdirSync, writeFileSync, renameSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : def; };
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write('usage: node scripts/dump_dataset.mjs --data synthetic|fashion-mnist[:DIR]|cifar10:DIR [--split test|train] [--out FILE.npz] [--no-train-fingerprint]\n');
  process.exit(0);
}
const spec = opt('data', 'synthetic'), split = opt('split', 'test');
const out = path.resolve(opt('out', path.join(ROOT, 'out/eval-cache', `${spec.split(':')[0]}-${split}.npz`)));
process.chdir(ROOT); // the engine's dataset cache (.cache/data) is relative to the repository root

const { loadDataset, parseDataSpec } = await import(path.join(ROOT, 'build/data/readers.js'));
const { fingerprint } = await import(path.join(ROOT, 'build/data/dataset.js'));
const ds = parseDataSpec(spec);
const d = await loadDataset(ds, split, { onProgress: (m) => process.stderr.write(`${m}\n`) });
const meta = {
  data: spec, split, classes: d.classes, count: d.count, channels: d.channels, height: d.height, width: d.width,
  fingerprint: fingerprint(d),
  // The judge file is used by `dit eval` only when its recorded fingerprint is the train split's.
  train_fingerprint: split === 'train' ? fingerprint(d) : args.includes('--no-train-fingerprint') ? null : fingerprint(await loadDataset(ds, 'train')),
  written_by: 'scripts/dump_dataset.mjs',
};

/** A .npy (format 1.0) of a C-order array. */
function npy(descr, shape, bytes) {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  Buffer.from([0x93, ...Buffer.from('NUMPY'), 1, 0]).copy(pre);
  pre.writeUInt16LE(header.length, 8);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)]);
}

const CRC = new Uint32Array(256).map((_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
function crc32(b) { let c = 0xffffffff; for (let i = 0; i < b.length; i++) c = CRC[(c ^ b[i]) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; }

/** An uncompressed ZIP (what numpy.savez writes) of name → bytes. */
function zip(files) {
  const parts = [], central = [];
  let offset = 0;
  for (const [name, data] of files) {
    const n = Buffer.from(name), crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0); local.writeUInt16LE(20, 4); local.writeUInt16LE(0, 6); local.writeUInt16LE(0, 8);
    local.writeUInt32LE(0, 10); local.writeUInt32LE(crc, 14); local.writeUInt32LE(data.length, 18); local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(n.length, 26); local.writeUInt16LE(0, 28);
    const cen = Buffer.alloc(46);
    cen.writeUInt32LE(0x02014b50, 0); cen.writeUInt16LE(20, 4); cen.writeUInt16LE(20, 6); cen.writeUInt16LE(0, 8); cen.writeUInt16LE(0, 10);
    cen.writeUInt32LE(0, 12); cen.writeUInt32LE(crc, 16); cen.writeUInt32LE(data.length, 20); cen.writeUInt32LE(data.length, 24);
    cen.writeUInt16LE(n.length, 28); cen.writeUInt32LE(offset, 42);
    parts.push(local, n, data);
    central.push(cen, n);
    offset += 30 + n.length + data.length;
  }
  const cd = Buffer.concat(central), end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(files.length, 8); end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(cd.length, 12); end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cd, end]);
}

const metaBytes = new Uint8Array(Buffer.from(JSON.stringify(meta)));
const bytes = zip([
  ['images.npy', npy('|u1', [d.count, d.channels, d.height, d.width], d.images)],
  ['labels.npy', npy('|u1', [d.count], d.labels)],
  ['meta.npy', npy('|u1', [metaBytes.length], metaBytes)],
]);
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(`${out}.tmp`, bytes);
renameSync(`${out}.tmp`, out);
process.stderr.write(`wrote ${out}: ${d.count} ${split} images ${d.channels}×${d.height}×${d.width}, fingerprint ${meta.fingerprint}\n`);
