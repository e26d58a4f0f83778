import { expect } from 'chai';
import * as path from 'node:path';
import { verifyReference } from '../verify/index.js';
import { AutoencoderKL, SD_VAE_FT_MSE, SMALL_VAE_32, renameLegacyVaeKey } from '../vae/model.js';
import { inferVaeConfig, loadVae } from '../vae/checkpoint.js';
import { Tensor, scope, noGrad } from '../engine/tensor.js';
import { slice } from '../kernels/shape.js';
import { randomNormal } from '../kernels/registry.js';
import { device, randArray, REFERENCE_DIR } from './helpers.js';

const VAE_REF = path.join(REFERENCE_DIR, 'vae');

/** The documented tiling of an h×w grid: tiles of t, a start every t − overlap, the last flush with the edge. */
function tileGrid(h: number, w: number, t: number, overlap: number): [number, number][] {
  const starts = (n: number) => { const s: number[] = []; for (let p = 0; p + t < n; p += t - overlap) s.push(p); s.push(n - t); return s; };
  return starts(h).flatMap((y) => starts(w).map((x): [number, number] => [y, x]));
}

/**
 * Checks a blended tiled result [B, C, H, W] against each tile computed on its own (tiles(b): position and
 * output of size tsz²): where one tile covers a pixel the result is that tile's own output; where several
 * overlap it lies between them (a convex blend), so its error against the untiled result `whole` is at most
 * the worst of theirs.
 */
async function expectBlended(got: Float32Array, whole: Float32Array, [B, C, H, W]: number[], tsz: number, tiles: (b: number) => { y0: number; x0: number; out: () => Tensor }[]): Promise<void> {
  const scale = Math.max(...Array.from(whole, Math.abs));
  const eps = 1e-6 * scale;
  let single = 0, blended = 0, worstSingle = 0, worstBlendErr = 0, worstTileErr = 0;
  for (let b = 0; b < B; b++) {
    const ts = tiles(b);
    const outs = await Promise.all(ts.map(async (tl) => await scope(() => noGrad(tl.out)).data() as Float32Array));
    for (let c = 0; c < C; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      const i = ((b * C + c) * H + y) * W + x;
      const vals = ts.flatMap((tl, k) => (y >= tl.y0 && y < tl.y0 + tsz && x >= tl.x0 && x < tl.x0 + tsz ? [outs[k][(c * tsz + y - tl.y0) * tsz + x - tl.x0]] : []));
      expect(vals.length, `pixel (${b},${c},${y},${x}) is covered`).to.be.greaterThan(0);
      if (vals.length === 1) {
        single++;
        worstSingle = Math.max(worstSingle, Math.abs(got[i] - vals[0]));
      } else {
        blended++;
        expect(got[i], `blend at (${b},${c},${y},${x}) lies between its tiles ${vals}`).to.be.within(Math.min(...vals) - eps, Math.max(...vals) + eps);
        worstBlendErr = Math.max(worstBlendErr, Math.abs(got[i] - whole[i]));
        worstTileErr = Math.max(worstTileErr, ...vals.map((v) => Math.abs(v - whole[i])));
      }
    }
  }
  expect(single, 'pixels covered by one tile').to.be.greaterThan(0);
  expect(blended, 'pixels where tiles blend').to.be.greaterThan(0);
  expect(worstSingle, 'one tile: its own result').to.be.at.most(eps);
  expect(worstBlendErr, 'the blend region\'s error against the untiled result is bounded by its tiles\' errors').to.be.at.most(worstTileErr + eps);
}

describe('VAE (AutoencoderKL) parity with diffusers (shared/reference/vae)', function () {
  this.timeout(300000);
  before(device);

  for (const f of ['vae_a', 'vae_a_inter', 'vae_dist']) {
    it(`${f}: every check of dit verify passes`, async () => {
      const rep = await verifyReference(path.join(VAE_REF, `${f}.safetensors`));
      const failed = rep.rows.filter((r) => !r.pass).map((r) => `${r.key} ${r.error.toExponential(2)} > ${r.tolerance}`);
      expect(failed, failed.join('\n')).to.deep.equal([]);
      const keys = rep.rows.map((r) => r.key);
      if (f === 'vae_a') expect(keys).to.include.members(['enc.moments', 'enc.sample', 'dec.out', 'recon.out', 'rect.out', 'grad.z', 'grad.decoder.mid_block.attentions.0.to_k.bias', 'grad.decoder.up_blocks.1.resnets.0.conv_shortcut.weight']);
      if (f === 'vae_a_inter') expect(keys).to.have.length(23);
      if (f === 'vae_dist') expect(keys).to.include.members(['dist.kl', 'dist.kl_other', 'dist.other.nll', 'dist.sample']);
    });
  }

  it('the sd-vae-ft-mse preset has exactly 83,653,863 parameters in 248 tensors, 8× downsampling', async () => {
    const vae = new AutoencoderKL(SD_VAE_FT_MSE);
    expect(vae.numParameters()).to.equal(83653863);
    expect(vae.namedTensors()).to.have.length(248);
    expect(vae.downsampling).to.equal(8);
    expect(vae.namedParameters().map(([n]) => n)).to.include.members(['encoder.mid_block.attentions.0.to_q.weight', 'decoder.up_blocks.0.upsamplers.0.conv.weight', 'decoder.up_blocks.3.resnets.2.conv2.bias', 'quant_conv.weight']);
    const shapes = new Map(vae.namedTensors().map(([n, t]) => [n, [...t.shape]]));
    expect(inferVaeConfig((k) => shapes.get(k), [...shapes.keys()])).to.deep.include({ blockOutChannels: [128, 256, 512, 512], layersPerBlock: 2, normNumGroups: 32, latentChannels: 4 });
    vae.dispose();
  });

  it('maps the older attention names (query/key/value/proj_attn) to the current ones', () => {
    expect(renameLegacyVaeKey('encoder.mid_block.attentions.0.query.weight')).to.equal('encoder.mid_block.attentions.0.to_q.weight');
    expect(renameLegacyVaeKey('decoder.mid_block.attentions.0.proj_attn.bias')).to.equal('decoder.mid_block.attentions.0.to_out.0.bias');
    expect(renameLegacyVaeKey('decoder.conv_in.weight')).to.equal('decoder.conv_in.weight');
  });

  it('loads sharded weights through the index and encodes/decodes any size divisible by the factor', async () => {
    const vae = await loadVae(path.join(VAE_REF, 'vae_a.weights.index.json'));
    expect(vae.config).to.deep.include({ blockOutChannels: [32, 64], layersPerBlock: 1, normNumGroups: 8 });
    const out = scope(() => noGrad(() => vae.forward(Tensor.from(randArray(3 * 8 * 16, 1), [1, 3, 8, 16]))));
    expect(out.shape).to.deep.equal([1, 3, 8, 16]);
    expect(() => vae.encode(Tensor.from(randArray(3 * 9 * 9, 1), [1, 3, 9, 9]))).to.throw(/H, W divisible by 2, got \[1,3,9,9\]/);
    vae.dispose();
  });

  it('decodes latents larger than the binding limit allows in blended tiles: each tile\'s own decode where one tile covers, a convex blend where tiles overlap', async () => {
    const vae = await loadVae(path.join(VAE_REF, 'vae_a.weights.index.json'));
    const z = Tensor.from(randomNormal(2 * 4 * 12 * 20, 3), [2, 4, 12, 20]);
    const whole = await scope(() => noGrad(() => vae.decode(z))).data() as Float32Array;
    const same = await scope(() => noGrad(() => vae.decodeLarge(z))).data();
    expect(Array.from(same)).to.deep.equal(Array.from(whole)); // under the limit: the plain decode
    const logs: string[] = [];
    const tiled = scope(() => noGrad(() => vae.decodeLarge(z, (m) => logs.push(m), vae.decodeBytes(8, 8))));
    expect(tiled.shape).to.deep.equal([2, 3, 24, 40]);
    const m = /decoding in \d+×\d+ tiles of (\d+)×\d+ latents \(overlap (\d+)\)/.exec(logs.join());
    expect(m, logs.join()).to.not.equal(null);
    const t = +m![1], f = vae.downsampling;
    const tiles = (b: number) => tileGrid(12, 20, t, +m![2]).map(([y0, x0]) => ({ y0: y0 * f, x0: x0 * f, out: () => vae.decode(slice(slice(slice(z, 0, b, b + 1), 2, y0, y0 + t), 3, x0, x0 + t)) }));
    await expectBlended(await tiled.data() as Float32Array, whole, [2, 3, 24, 40], t * f, tiles);
    vae.dispose();
  });

  it('encodes images larger than the binding limit allows in blended tiles: each tile\'s own moments where one tile covers, a convex blend where tiles overlap', async () => {
    const vae = await loadVae(path.join(VAE_REF, 'vae_a.weights.index.json'));
    const x = Tensor.from(randomNormal(1 * 3 * 32 * 48, 4), [1, 3, 32, 48]);
    const whole = await scope(() => noGrad(() => vae.encode(x).mean)).data() as Float32Array;
    const logs: string[] = [];
    const tiled = scope(() => noGrad(() => vae.encodeLarge(x, (m) => logs.push(m), vae.encodeBytes(16, 16)).mean));
    expect(tiled.shape).to.deep.equal([1, 4, 16, 24]);
    const m = /encoding in \d+×\d+ tiles of (\d+)×\d+ pixels \(overlap (\d+)\)/.exec(logs.join());
    expect(m, logs.join()).to.not.equal(null);
    const t = +m![1], f = vae.downsampling;
    const tiles = () => tileGrid(32, 48, t, +m![2]).map(([y0, x0]) => ({ y0: y0 / f, x0: x0 / f, out: () => vae.encode(slice(slice(x, 2, y0, y0 + t), 3, x0, x0 + t)).mean }));
    await expectBlended(await tiled.data() as Float32Array, whole, [1, 4, 16, 24], t / f, tiles);
    vae.dispose();
  });

  it('the small 32×32 preset maps images to 8×8×4 latents', () => {
    const vae = new AutoencoderKL(SMALL_VAE_32);
    const post = scope(() => noGrad(() => { const p = vae.encode(Tensor.from(randArray(2 * 3 * 1024, 2), [2, 3, 32, 32])); return { m: p.mean }; }));
    expect(post.m.shape).to.deep.equal([2, 4, 8, 8]);
    vae.dispose();
  });
});
