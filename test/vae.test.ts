import { expect } from 'chai';
import * as path from 'node:path';
import { verifyReference } from '../verify/index.js';
import { AutoencoderKL, SD_VAE_FT_MSE, SMALL_VAE_32, renameLegacyVaeKey } from '../vae/model.js';
import { inferVaeConfig, loadVae } from '../vae/checkpoint.js';
import { Tensor, scope, noGrad } from '../engine/tensor.js';
import { device, randArray, REFERENCE_DIR } from './helpers.js';

const VAE_REF = path.join(REFERENCE_DIR, 'vae');

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

  it('decodes latents larger than the binding limit allows in blended tiles, and says so', async () => {
    const vae = await loadVae(path.join(VAE_REF, 'vae_a.weights.index.json'));
    const z = Tensor.from(randArray(2 * 4 * 12 * 20, 3), [2, 4, 12, 20]);
    const whole = await scope(() => noGrad(() => vae.decode(z))).data();
    const same = await scope(() => noGrad(() => vae.decodeLarge(z))).data();
    expect(Array.from(same)).to.deep.equal(Array.from(whole)); // under the limit: the plain decode
    const logs: string[] = [];
    const tiled = scope(() => noGrad(() => vae.decodeLarge(z, (m) => logs.push(m), vae.decodeBytes(8, 8))));
    expect(tiled.shape).to.deep.equal([2, 3, 24, 40]);
    const t = await tiled.data();
    expect(Array.from(t).every(Number.isFinite)).to.equal(true);
    expect(logs.join()).to.match(/decoding in \d+×\d+ tiles of \d+×\d+ latents/);
    // Blending keeps values in the range of the untiled decode (no seams of double weight).
    const max = Math.max(...Array.from(whole, Math.abs));
    expect(Math.max(...Array.from(t, Math.abs))).to.be.lessThan(2 * max);
    vae.dispose();
  });

  it('encodes images larger than the binding limit allows in blended tiles, and says so', async () => {
    const vae = await loadVae(path.join(VAE_REF, 'vae_a.weights.index.json'));
    const x = Tensor.from(randArray(1 * 3 * 32 * 48, 4), [1, 3, 32, 48]);
    const whole = await scope(() => noGrad(() => vae.encode(x).mean)).data();
    const logs: string[] = [];
    const tiled = scope(() => noGrad(() => vae.encodeLarge(x, (m) => logs.push(m), vae.encodeBytes(16, 16)).mean));
    expect(tiled.shape).to.deep.equal([1, 4, 16, 24]);
    const t = await tiled.data();
    expect(logs.join()).to.match(/encoding in \d+×\d+ tiles of 16×16 pixels/);
    expect(Array.from(t).every(Number.isFinite)).to.equal(true);
    expect(Math.max(...Array.from(t, Math.abs))).to.be.lessThan(2 * Math.max(...Array.from(whole, Math.abs)));
    vae.dispose();
  });

  it('the small 32×32 preset maps images to 8×8×4 latents', () => {
    const vae = new AutoencoderKL(SMALL_VAE_32);
    const post = scope(() => noGrad(() => { const p = vae.encode(Tensor.from(randArray(2 * 3 * 1024, 2), [2, 3, 32, 32])); return { m: p.mean }; }));
    expect(post.m.shape).to.deep.equal([2, 4, 8, 8]);
    vae.dispose();
  });
});
