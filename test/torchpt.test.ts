import { expect } from 'chai';
import * as path from 'node:path';
import { readFileBytes } from '../engine/node.js';
import { loadTorchCheckpoint, stateDictOf, torchTensorF32 } from '../engine/torchpt.js';
import { REFERENCE_DIR } from './helpers.js';

/** A minimal zip writer (stored entries), enough to build torch.save-style archives in tests. */
function zip(entries: { name: string; data: Uint8Array }[]): Uint8Array {
  const parts: Uint8Array[] = [], central: Uint8Array[] = [];
  let off = 0;
  const crcTable = Array.from({ length: 256 }, (_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
  const crc32 = (d: Uint8Array) => { let c = 0xffffffff; for (const b of d) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
  for (const e of entries) {
    const name = new TextEncoder().encode(e.name);
    const h = new DataView(new ArrayBuffer(30));
    h.setUint32(0, 0x04034b50, true); h.setUint32(14, crc32(e.data), true);
    h.setUint32(18, e.data.length, true); h.setUint32(22, e.data.length, true); h.setUint16(26, name.length, true);
    const c = new DataView(new ArrayBuffer(46));
    c.setUint32(0, 0x02014b50, true); c.setUint32(16, crc32(e.data), true); c.setUint32(20, e.data.length, true); c.setUint32(24, e.data.length, true);
    c.setUint16(28, name.length, true); c.setUint32(42, off, true);
    parts.push(new Uint8Array(h.buffer), name, e.data);
    central.push(new Uint8Array(c.buffer), name);
    off += 30 + name.length + e.data.length;
  }
  const cdSize = central.reduce((a, b) => a + b.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true); end.setUint16(8, entries.length, true); end.setUint16(10, entries.length, true);
  end.setUint32(12, cdSize, true); end.setUint32(16, off, true);
  const all = [...parts, ...central, new Uint8Array(end.buffer)];
  const out = new Uint8Array(all.reduce((a, b) => a + b.length, 0));
  let p = 0;
  for (const a of all) { out.set(a, p); p += a.length; }
  return out;
}

/** Reads the stored zip entries of a torch.save file through its central directory (torch writes the sizes there). */
function unzipStored(bytes: Uint8Array): { name: string; data: Uint8Array }[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = bytes.length - 22;
  while (dv.getUint32(eocd, true) !== 0x06054b50) eocd--;
  const count = dv.getUint16(eocd + 10, true);
  let p = dv.getUint32(eocd + 16, true);
  const out = [];
  for (let i = 0; i < count; i++) {
    const size = dv.getUint32(p + 20, true), n = dv.getUint16(p + 28, true), x = dv.getUint16(p + 30, true), c = dv.getUint16(p + 32, true);
    const local = dv.getUint32(p + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + n));
    const start = local + 30 + dv.getUint16(local + 26, true) + dv.getUint16(local + 28, true);
    out.push({ name, data: bytes.subarray(start, start + size) });
    p += 46 + n + x + c;
  }
  return out;
}

describe('torch .pt checkpoints', () => {
  it('reads a training checkpoint {model, ema, opt, args}: EMA by default, the raw model on request', async () => {
    const bytes = await readFileBytes(path.join(REFERENCE_DIR, 'dit_tiny_p2.pt'));
    const entries = unzipStored(bytes);
    const pklEntry = entries.find((e) => e.name.endsWith('data.pkl'))!;
    const prefix = pklEntry.name.slice(0, -'data.pkl'.length);
    const pkl = pklEntry.data;
    // The state dict's pickle body without PROTO (2 bytes) and STOP (1 byte): the EMA weights as they are.
    const ema = pkl.subarray(2, pkl.length - 1);
    // The raw model: the same dict over its own storages 'm<key>', holding the EMA's values negated. Storage
    // keys are the only all-digit strings (BINUNICODE) in a state dict's pickle.
    const latin1 = (b: Uint8Array) => Array.from(b, (c) => String.fromCharCode(c)).join('');
    const model = Uint8Array.from(latin1(ema).replace(/X([\x01-\x09])\x00\x00\x00(\d+)/g, (m, len: string, key: string) => (key.length === len.charCodeAt(0) ? `X${String.fromCharCode(key.length + 1)}\x00\x00\x00m${key}` : m)), (c) => c.charCodeAt(0));
    const negated = entries.filter((e) => e.name.startsWith(`${prefix}data/`)).map((e) => {
      const f = new Float32Array(e.data.slice().buffer).map((v) => -v);
      return { name: `${prefix}data/m${e.name.slice(prefix.length + 5)}`, data: new Uint8Array(f.buffer) };
    });
    const enc = new TextEncoder();
    const str = (s: string) => { const b = enc.encode(s); return [0x58, b.length & 0xff, (b.length >> 8) & 0xff, 0, 0, ...b]; };
    const lr = new Uint8Array(8); new DataView(lr.buffer).setFloat64(0, 1e-4, false);
    const pickle = Uint8Array.from([
      0x80, 2, 0x7d, 0x28, // PROTO 2, EMPTY_DICT, MARK
      ...str('model'), ...model,
      ...str('ema'), ...ema,
      ...str('opt'), 0x7d, // an (empty) optimizer state dict
      ...str('args'), 0x63, ...enc.encode('argparse\nNamespace\n'), 0x29, 0x81, 0x7d, ...str('lr'), 0x47, ...lr, 0x73, 0x62, // Namespace(lr=1e-4)
      0x75, 0x2e, // SETITEMS, STOP
    ]);
    const archive = [...entries.map((e) => (e === pklEntry ? { name: e.name, data: pickle } : e)), ...negated];
    const ck = await loadTorchCheckpoint(zip(archive), 'train.pt');
    const emaSd = stateDictOf(ck), modelSd = stateDictOf(ck, 'model');
    expect(emaSd.size).to.equal(32);
    expect(modelSd.size).to.equal(32);
    const ref = stateDictOf(await loadTorchCheckpoint(bytes, 'dit_tiny_p2.pt'));
    for (const name of ['blocks.1.attn.qkv.weight', 'final_layer.linear.bias']) {
      const want = Array.from(torchTensorF32(ref.get(name)!));
      expect(want.some((v) => v !== 0), `${name} has nonzero values`).to.equal(true);
      expect(Array.from(torchTensorF32(emaSd.get(name)!)), `ema ${name}`).to.deep.equal(want);
      expect(Array.from(torchTensorF32(modelSd.get(name)!)), `model ${name}`).to.deep.equal(want.map((v) => -v));
    }
    expect(() => stateDictOf(ck, 'model' as never) && stateDictOf({ root: new Map([['x', 1]]), source: 's.pt' })).to.throw(/s.pt: no state dict under 'model' \(keys: x\)/);
  });

  it('names the file and what is missing for a truncated archive', async () => {
    const bytes = await readFileBytes(path.join(REFERENCE_DIR, 'dit_tiny_p2.pt'));
    let msg = '';
    try { await loadTorchCheckpoint(bytes.subarray(0, bytes.length - 200), 'cut.pt'); } catch (e) { msg = (e as Error).message; }
    expect(msg).to.match(/^cut.pt: not a zip archive|^cut.pt: truncated|^cut.pt: corrupt/);
  });
});
