import { expect } from 'chai';
import * as path from 'node:path';
import * as os from 'node:os';
import { promises as fs } from 'node:fs';
import { readSafetensors } from '../engine/safetensors.js';
import { readFileBytes } from '../engine/node.js';
import { loadTorchCheckpoint, stateDictOf, torchTensorF32 } from '../engine/torchpt.js';
import { Tensor, scope, noGrad } from '../engine/tensor.js';
import { backward } from '../engine/autograd.js';
import { sum } from '../kernels/reduce.js';
import { verifyReference } from '../verify/index.js';
import { DiT, sincosPosEmbed, timestepFrequencies } from '../dit/model.js';
import { ditConfig, ditGflops, ditParams, DIT_MODEL_NAMES } from '../dit/config.js';
import { readWeights, convertCheckpoint, inferConfig } from '../dit/checkpoint.js';
import { device, read, randArray, REFERENCE_DIR, trainConfig } from './helpers.js';
import { patternLatents } from './latents.js';
import { DiTTrainer } from '../dit/train.js';
import { OFFICIAL_OBJECTIVE } from '../diffusion/objective.js';

const REF = REFERENCE_DIR;

describe('DiT parity with the official PyTorch code (shared/reference)', function () {
  this.timeout(300000);
  before(device);

  for (const f of ['dit_tiny_p2', 'dit_tiny_p4', 'dit_tiny_p2_nosigma', 'sample_loop_tiny_p2', 'train_step_tiny']) {
    it(`${f}: every check of dit verify passes`, async () => {
      const rep = await verifyReference(path.join(REF, `${f}.safetensors`));
      const failed = rep.rows.filter((r) => !r.pass).map((r) => `${r.key} ${r.error.toExponential(2)} > ${r.tolerance}`);
      expect(failed, failed.join('\n')).to.deep.equal([]);
      expect(rep.rows.length).to.be.greaterThan(20);
      const keys = rep.rows.map((r) => r.key);
      if (f.startsWith('dit_tiny')) expect(keys).to.include.members(['out.forward', 'grad.x']);
      if (f === 'dit_tiny_p2') expect(keys).to.include.members(['cfg.out_scale1.5', 'cfg.out_scale4.0', 'label_drop.emb', 'inter.block0.attn_out', 'train_grad.grad.blocks.0.attn.qkv.weight', 'train.vb']);
      if (f === 'sample_loop_tiny_p2') expect(keys).to.include.members(['ddpm.x[9]', 'ddim.x[9]', 'ddpm.final_cond_half']);
      if (f === 'train_step_tiny') expect(keys).to.include.members(['step1.param.blocks.0.attn.qkv.weight', 'step0.loss_mean', 'step1.grad.x_embedder.proj.weight']);
    });
  }

  it('a wrong weight fails verification (the checks can fail)', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dit-'));
    const src = await readSafetensors(path.join(REF, 'dit_tiny_p2_nosigma.safetensors'));
    const { writeSafetensors } = await import('../engine/safetensors.js');
    const tensors = new Map(src.keys().map((k) => [k, { shape: src.shape(k), data: Float32Array.from(src.f32(k)) }]));
    tensors.get('blocks.0.mlp.fc2.bias')!.data[3] += 0.05;
    await writeSafetensors(path.join(dir, 'bad.safetensors'), tensors, src.metadata);
    const rep = await verifyReference(path.join(dir, 'bad.safetensors'));
    expect(rep.pass).to.equal(false);
    expect(rep.rows.find((r) => r.key === 'out.forward')!.pass).to.equal(false);
  });

  it('loads the torch .pt checkpoint bit for bit equal to the safetensors weights', async () => {
    const ck = await loadTorchCheckpoint(await readFileBytes(path.join(REF, 'dit_tiny_p2.pt')), 'dit_tiny_p2.pt');
    const sd = stateDictOf(ck);
    const st = await readSafetensors(path.join(REF, 'dit_tiny_p2.safetensors'));
    const names = [...sd.keys()];
    expect(names).to.include('pos_embed').and.include('blocks.1.adaLN_modulation.1.weight');
    for (const n of names) {
      const a = torchTensorF32(sd.get(n)!), b = st.f32(n);
      expect(sd.get(n)!.shape, n).to.deep.equal(st.shape(n));
      expect(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength)), n).to.equal(true);
    }
  });

  it('dit convert writes a safetensors file that verifies, with the config inferred from shapes', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dit-'));
    const out = path.join(dir, 'w.safetensors');
    const r = await convertCheckpoint(path.join(REF, 'dit_tiny_p2.pt'), out, { heads: 4 });
    expect(r.config).to.deep.include({ inputSize: 16, patchSize: 2, hiddenSize: 64, depth: 2, numHeads: 4, numClasses: 10, learnSigma: true });
    const rep = await verifyReference(path.join(REF, 'dit_tiny_p2.safetensors'), out);
    expect(rep.pass).to.equal(true);
  });

  it('names the file and the problem for a truncated .pt and the key for a mismatched one', async () => {
    const bytes = await readFileBytes(path.join(REF, 'dit_tiny_p2.pt'));
    let msg = '';
    try { await loadTorchCheckpoint(bytes.subarray(0, 5000), 'cut.pt'); } catch (e) { msg = (e as Error).message; }
    expect(msg).to.match(/^cut.pt: /);
    const w = await readWeights(path.join(REF, 'dit_tiny_p2.safetensors'));
    const model = new DiT(undefined, { inputSize: 16, patchSize: 2, hiddenSize: 64, depth: 2, numHeads: 4, numClasses: 12 });
    expect(() => model.loadStateDict(w.tensors, { source: 'x.safetensors' })).to.throw(/shape mismatch for 'y_embedder.embedding_table.weight' \(from x.safetensors\): checkpoint \[11,64\], model \[13,64\]/);
    model.dispose();
  });
});

describe('DiT model', () => {
  before(device);

  it('reproduces the paper\'s Table 4 Gflops and parameter counts (and XL/2 at 512 px)', () => {
    const table: Record<string, [number, number]> = {
      'DiT-S/8': [0.36, 33], 'DiT-S/4': [1.41, 33], 'DiT-S/2': [6.06, 33], 'DiT-B/8': [1.42, 131], 'DiT-B/4': [5.57, 130], 'DiT-B/2': [23.01, 130],
      'DiT-L/8': [5.01, 459], 'DiT-L/4': [19.70, 458], 'DiT-L/2': [80.71, 458], 'DiT-XL/8': [7.39, 676], 'DiT-XL/4': [29.05, 675], 'DiT-XL/2': [118.64, 675],
    };
    for (const name of DIT_MODEL_NAMES) {
      const c = ditConfig(name);
      expect(+ditGflops(c).toFixed(2), name).to.equal(table[name][0]);
      expect(Math.round(ditParams(c) / 1e6), name).to.equal(table[name][1]);
    }
    expect(ditParams(ditConfig('DiT-XL/2'))).to.equal(674834720);
    expect(ditParams(ditConfig('DiT-XL/2'), true)).to.equal(675129632);
    expect(+ditGflops(ditConfig('DiT-XL/2', { inputSize: 64 })).toFixed(2)).to.equal(524.60);
    // Table 4's block variants of XL/2.
    expect(+ditGflops(ditConfig('DiT-XL/2', { conditioning: 'adaLN' })).toFixed(2)).to.equal(118.56);
    expect(+ditGflops(ditConfig('DiT-XL/2', { conditioning: 'in-context' })).toFixed(2)).to.equal(119.37);
    expect(+ditGflops(ditConfig('DiT-XL/2', { conditioning: 'cross-attention' })).toFixed(2)).to.equal(137.62);
    expect(Math.round(ditParams(ditConfig('DiT-XL/2', { conditioning: 'cross-attention' })) / 1e6)).to.equal(598);
    expect(Math.round(ditParams(ditConfig('DiT-XL/2', { conditioning: 'in-context' })) / 1e6)).to.equal(449);
    expect(Math.round(ditParams(ditConfig('DiT-XL/2', { conditioning: 'adaLN' })) / 1e6)).to.equal(600);
  });

  it('builds every conditioning design with the counted parameters, passes gradients as its init allows, and names tensors officially', async () => {
    for (const conditioning of ['adaLN-Zero', 'adaLN', 'cross-attention', 'in-context'] as const) {
      const m = new DiT(undefined, { inputSize: 8, hiddenSize: 32, depth: 2, numHeads: 2, numClasses: 5, conditioning });
      expect(m.numParameters(), conditioning).to.equal(ditParams(m.config));
      m.train();
      const x = Tensor.from(randArray(2 * 4 * 64, 1), [2, 4, 8, 8]);
      const grads = async () => {
        backward(sum(m.forward(x, [3, 700], [1, 4])));
        const nonzero = await Promise.all(m.namedParameters().map(async ([n, p]) => [n, p.grad ? (await read(p.grad)).some((v) => v !== 0) : false] as const));
        m.zeroGrad();
        return nonzero.filter(([, z]) => z).map(([n]) => n);
      };
      // At the official init the final linear is zero: only it receives gradients (S4.7).
      expect(await grads(), conditioning).to.deep.equal(['final_layer.linear.weight', 'final_layer.linear.bias']);
      // With it non-zero, gradients reach the blocks: through the gates' modulation only for adaLN-Zero
      // (zero gates), through every layer for the other designs.
      const { map } = await import('../kernels/elementwise.js');
      map('x', { x: Tensor.from(randArray(m.finalLayer.linear.weight.size, 3), [...m.finalLayer.linear.weight.shape]) }, { out: m.finalLayer.linear.weight });
      const reached = await grads();
      if (conditioning === 'adaLN-Zero') {
        expect(reached).to.include('blocks.1.adaLN_modulation.1.weight');
        expect(reached).to.not.include('blocks.0.attn.qkv.weight');
      } else {
        expect(reached).to.include.members(['blocks.0.attn.qkv.weight', 'blocks.1.mlp.fc2.weight', 'x_embedder.proj.weight']);
        // The condition reaches the blocks through zero-initialised modulation (adaLN) or as tokens.
        if (conditioning !== 'adaLN') expect(reached).to.include.members(['t_embedder.mlp.0.weight', 'y_embedder.embedding_table.weight']);
      }
      m.dispose();
    }
    const names = new DiT(undefined, { inputSize: 8, hiddenSize: 32, depth: 1, numHeads: 2, numClasses: 5, conditioning: 'cross-attention' }).namedParameters().map(([n]) => n);
    expect(names).to.include.members(['blocks.0.norm1.weight', 'blocks.0.cross_attn.kv.weight', 'blocks.0.norm3.bias', 'final_layer.norm_final.weight']);
  });

  it('trains every conditioning design: the loss falls over a few dozen steps', async function () {
    this.timeout(900_000); // four designs × a few dozen steps: over two minutes on SwiftShader
    const data = patternLatents(Array.from({ length: 5 }, (_, k) => randArray(64, 60 + k)), [4, 4, 4], 500, 0.1);
    for (const conditioning of ['adaLN-Zero', 'adaLN', 'cross-attention', 'in-context'] as const) {
      const m = new DiT(undefined, { inputSize: 4, hiddenSize: 32, depth: 2, numHeads: 2, numClasses: 5, conditioning }, 1);
      const tr = new DiTTrainer(m, OFFICIAL_OBJECTIVE, data, trainConfig({ steps: 60, batch: 16, lr: 2e-3, warmup: 5 }));
      const losses: number[] = [];
      while (tr.step < 60) {
        tr.trainStep(true);
        losses.push((await tr.metrics()).loss);
      }
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b) / xs.length;
      const first = mean(losses.slice(0, 10)), last = mean(losses.slice(-10));
      expect(last, `${conditioning}: mean loss of steps 1–10 ${first.toFixed(3)}, of steps 51–60 ${last.toFixed(3)}`).to.be.below(0.6 * first);
      tr.dispose(); m.dispose();
    }
  });

  it('initialises as the official code: zero output, fixed sin-cos pos_embed, xavier bounds', async () => {
    const m = new DiT(undefined, { inputSize: 16, hiddenSize: 64, depth: 1, numHeads: 4, numClasses: 10 });
    m.eval();
    const out = await read(scope(() => noGrad(() => m.forward(Tensor.from(randArray(4 * 256, 2), [1, 4, 16, 16]), [10], [3]))));
    expect(out.every((v) => v === 0)).to.equal(true);
    const st = await readSafetensors(path.join(REF, 'embeddings.safetensors'));
    const pe = sincosPosEmbed(64, 8);
    const ref = st.f32('pos_embed.D64_G8');
    expect(Math.max(...pe.map((v, i) => Math.abs(v - ref[i])))).to.be.lessThan(1e-6);
    const qkv = await read(m.blocks.items[0].attn.qkv.weight);
    const bound = Math.sqrt(6 / (64 + 192));
    expect(Math.max(...qkv.map(Math.abs))).to.be.at.most(bound).and.greaterThan(0.9 * bound);
    m.dispose();
  });

  it('timestep features match the official float32 computation', async () => {
    const st = await readSafetensors(path.join(REF, 'embeddings.safetensors'));
    const t = Array.from(st.f32('t'));
    const got = timestepFrequencies(t);
    const ref = st.f32('timestep_embedding.dim256');
    expect(Math.max(...got.map((v, i) => Math.abs(v - ref[i])))).to.be.lessThan(1e-4);
    const odd = timestepFrequencies(t, 7);
    // odd dim: the official code appends a zero column; ours leaves index 6 at 0 as well.
    const r7 = st.f32('timestep_embedding.dim7');
    expect(Math.max(...odd.map((v, i) => Math.abs(v - r7[i])))).to.be.lessThan(1e-4);
  });

  it('infers the config from tensor shapes, except the head count of a width that is not the paper\'s', async () => {
    const w = await readWeights(path.join(REF, 'dit_tiny_p4.safetensors'));
    const shape = (n: string) => w.tensors.get(n)?.shape, keys = [...w.tensors.keys()];
    const c = inferConfig(shape, keys, { heads: 3 });
    expect(c).to.deep.include({ inputSize: 16, patchSize: 4, hiddenSize: 72, depth: 2, numHeads: 3, numClasses: 10, learnSigma: true, conditioning: 'adaLN-Zero' });
    expect(() => inferConfig(shape, keys, { source: 'p4' })).to.throw(/^p4: hidden size 72 is not one of the paper's widths .* give it \(--heads N\)/);
  });

  it('label dropout in training mode is seeded and drops about the configured fraction', () => {
    const m = new DiT(undefined, { inputSize: 8, hiddenSize: 32, depth: 1, numHeads: 2, numClasses: 7, classDropoutProb: 0.25 });
    m.train();
    const y = new Array(4000).fill(3);
    const d1 = m.yEmbedder.dropLabels(y, true, m.labelDropGenerator);
    const frac = d1.filter((v) => v === 7).length / y.length;
    expect(frac).to.be.within(0.22, 0.28);
    expect(m.yEmbedder.dropLabels(y, false, m.labelDropGenerator)).to.deep.equal(y);
    m.dispose();
  });

  it('rejects wrong input shapes with the expected shape in the message', () => {
    const m = new DiT(undefined, { inputSize: 8, hiddenSize: 32, depth: 1, numHeads: 2, numClasses: 5 });
    expect(() => m.forward(Tensor.from(randArray(2 * 4 * 36, 1), [2, 4, 6, 6]), [1, 2], [0, 1])).to.throw(/DiT.forward: x must be \[B, 4, 8, 8\], got \[2,4,6,6\]/);
    expect(() => new DiT(undefined, { hiddenSize: 30, numHeads: 4 })).to.throw(/not divisible by 4 heads/);
    m.dispose();
  });
});
