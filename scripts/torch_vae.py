#!/usr/bin/python3
"""The small VAE's training (vae/train.ts) in PyTorch on the CPU, to try latent shapes and latent regularisers
about 15× faster than lavapipe here (0.15 s a step on 2 threads against 2.2 s, bench/vaestep.ts) before the engine
trains the winner. Exploration tooling: the engine stays the reference and what ships is trained by `dit vae train`.

The model is torch_eval.py's port of vae/model.ts (diffusers AutoencoderKL names, so the engine loads what this
writes). Training as trainVae: a posterior sample decoded, L1 or MSE reconstruction + KL·1e-6 (per-element mean),
AdamW without weight decay, batches of the train split with random horizontal flips, optional cosine decay to
10%. Phases run back to back with one optimiser each, like `dit vae train --resume` chains.

--equivariance W adds EQ-VAE's equivariance loss (Kosmopoulos et al. 2025) with weight W: each step one transform τ of
the batch's latent grids, a rotation by a multiple of 90°, a flip or a down-scaling by 2 (area), and the decoder asked
for τ(image) from τ(latent) with the phase's reconstruction loss. Latents that transform with their image are
smoother, and a DiT is said to learn on them faster; the judge of that is the DiT's curve, not the PSNR.

It writes the weights with the metadata `dit` reads (config, command) and prints the held-out PSNR (first
1,000 test images) and the reconstruction ceiling (`dit eval --reconstructions --per-class 50`).
    /usr/bin/python3 scripts/torch_vae.py --latent-channels 8 --out out/lab/vae8.safetensors
"""
import argparse, json, math, os, sys, time
import numpy as np
import torch, torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_eval  # noqa: E402

p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument('--data', default='synthetic')
p.add_argument('--channels', default='32,64,64', help='block widths')
p.add_argument('--latent-channels', type=int, default=4)
p.add_argument('--phases', default='l1:500:1e-3,mse:1000:5e-4:cos,mse:400:2e-4:cos',
               help="LOSS:STEPS:LR[:cos], comma-separated (default: the shipped VAE's three `dit vae train` runs)")
p.add_argument('--batch', type=int, default=16); p.add_argument('--kl', type=float, default=1e-6)
p.add_argument('--equivariance', '--eq', dest='eq', type=float, default=0, help="EQ-VAE's equivariance loss weight (0: off), as `dit vae train --equivariance`")
p.add_argument('--seed', type=int, default=0); p.add_argument('--threads', type=int, default=2)
p.add_argument('--weights', help='instead of training: score (and with --encode, encode with) these VAE weights')
p.add_argument('--out', required=True, help='the weights file written (with --weights: only names OUT-latents.safetensors)')
p.add_argument('--encode', metavar='CACHE', help="then write a latent cache of the first N train images as `dit vae encode` does (scale 1/std of "
               "posterior samples), its labels and the teacher's features copied from this engine-written cache of the same images")
a = p.parse_args()
torch.manual_seed(a.seed); torch.set_num_threads(a.threads)

images, labels, _ = torch_eval.load_dataset(a.data, 'train')
test_images, _, _ = torch_eval.load_dataset(a.data, 'test')
C = images.shape[1]
config = dict(in_channels=C, out_channels=C, block_out_channels=[int(c) for c in a.channels.split(',')], layers_per_block=1,
              norm_num_groups=16, latent_channels=a.latent_channels, scaling_factor=1)
vae = torch_eval.load_vae(a.weights).train() if a.weights else torch_eval.VAE(config)
config = vae.config
print(f'VAE {config["block_out_channels"]} -> {config["latent_channels"]} latent channels, {sum(t.numel() for t in vae.parameters()):,} parameters', file=sys.stderr)
rng = np.random.default_rng(a.seed)
to_x = lambda u8: torch.from_numpy(u8.astype(np.float32) / 127.5 - 1)


def encode(x):
    m = vae.quant_conv(vae.encoder(x)); L = m.shape[1] // 2
    return m[:, :L], m[:, L:].clamp(-30, 20)


def decode(z): return vae.decoder(vae.post_quant_conv(z))


def transform(t, k):
    """One of EQ-VAE's transforms of a batch of grids (images or latents alike): k in 0..3 rotations, 4 a flip, 5 a 2x area down-scaling."""
    if k < 4: return torch.rot90(t, k, (2, 3))
    if k == 4: return torch.flip(t, (2,))
    return F.avg_pool2d(t, 2)


@torch.no_grad()
def held_out_psnr(count=1000):
    vae.eval(); se = 0.0
    for s in range(0, count, 100):
        x = to_x(test_images[s:s + 100]); m, _ = encode(x); se += float(((decode(m) - x) ** 2).sum())
    vae.train()
    return 10 * math.log10(4 / (se / (count * np.prod(test_images.shape[1:]))))


t0 = time.time(); step = 0
for phase in [] if a.weights else a.phases.split(','):
    loss_kind, steps, lr, *rest = phase.split(':'); steps, lr, cos = int(steps), float(lr), 'cos' in rest
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0)
    recon = (lambda y, x: (y - x).abs().mean()) if loss_kind == 'l1' else (lambda y, x: ((y - x) ** 2).mean())
    for i in range(steps):
        if cos:
            for g in opt.param_groups: g['lr'] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * i / steps)))
        idx = rng.integers(0, len(images), a.batch)
        x = to_x(images[idx]); flip = rng.random(a.batch) < 0.5
        x[flip] = torch.flip(x[flip], (3,))
        m, lv = encode(x)
        z = m + torch.exp(0.5 * lv) * torch.randn_like(m)
        loss = recon(decode(z), x) + a.kl * 0.5 * (m ** 2 + lv.exp() - 1 - lv).mean()
        if a.eq:
            k = int(rng.integers(0, 6))
            loss = loss + a.eq * recon(decode(transform(z, k)), transform(x, k))
        opt.zero_grad(); loss.backward(); opt.step(); step += 1
        if step % 100 == 0: print(f'step {step}: loss {loss.item():.4f} ({time.time() - t0:.0f} s)', file=sys.stderr)
    print(f'phase {phase} done at step {step}: held-out PSNR {held_out_psnr():.2f} dB ({time.time() - t0:.0f} s)', file=sys.stderr)

vae.eval()
db = held_out_psnr()
meta = {'format': 'pt', 'config': json.dumps(config), 'command': 'python3 ' + ' '.join(sys.argv), 'psnr_db': f'{db:.2f}', 'psnr_images': '1000'}
os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
if not a.weights: torch_eval.write_safetensors(a.out, vae.state_dict(), meta)
if a.encode:
    like, like_meta = torch_eval.read_safetensors(a.encode)
    n = len(like['labels'])
    assert (like['labels'] == labels[:n]).all(), f'{a.encode} is not of the first {n} {a.data} train images'
    mean, logvar = vae.encode(to_x(images[:n]))
    m, ev = mean.double(), logvar.double().exp()
    scale = float(1 / torch.sqrt(m.var(unbiased=False) + ev.mean()))
    cache = {'mean': mean.numpy(), 'logvar': logvar.numpy(), 'labels': like['labels'].astype(np.int32)}
    if 'teacher' in like: cache['teacher'] = like['teacher'].astype(np.float16)
    out = a.out.replace('.safetensors', '') + '-latents.safetensors'
    torch_eval.write_safetensors(out, cache, {**like_meta, 'scale_factor': str(scale)})
    print(f'wrote {out}: {n} latents, scale factor {scale:.5f}', file=sys.stderr)
ceiling = torch_eval.Scorer(a.data).reconstruction_ceiling(vae, 50)
r = dict(psnr_db=db, seconds=time.time() - t0, ceiling_accuracy=ceiling['accuracy'], ceiling_frechet=ceiling['frechet'],
         floor=ceiling['frechet_real'], ceiling_ratio=ceiling['frechet'] / ceiling['frechet_real'], per_class=ceiling['per_class'])
print(json.dumps(r))
