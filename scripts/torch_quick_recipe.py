#!/usr/bin/python3
"""The `quick` recipe in PyTorch on the CPU: an independent check that our training loop learns at the rate
the official code does, and a faster place (about 5 steps/s on one core against lavapipe's 1.6 on two) to try
recipe changes before porting them.

It is the official DiT (models.py: adaLN-Zero blocks, sin-cos positions, learned sigma) and the official loss
(L_simple + L_vlb, linear schedule, 1000 steps), written small, plus the preset's additions: Min-SNR-γ on the
MSE term and the EMA warm-up of `dit train`. It trains on a latent cache from `dit vae encode` and writes the
EMA weights under the official names with the metadata `dit eval --weights` reads (config, scale factor,
classes), so our sampler, VAE and judge score them exactly as they score our own runs.

Needs Debian's PyTorch and a real BLAS (the default reference BLAS is 10x slower):
    apt-get install python3-torch libopenblas0-pthread
Then, for example (what dit/README.md reports):
    /usr/bin/python3 scripts/torch_quick_recipe.py --latents out/synthetic/latents.safetensors --steps 2800 \
        --save-at 1400 --out out/torch-quick
    node build/cli/dit.js eval --weights out/torch-quick-2800.safetensors --vae weights/vae-synthetic.safetensors \
        --per-class 10 --steps 25 --cfg 4
    /usr/bin/python3 scripts/torch_quick_recipe.py --latents ... --label-gain out/torch-quick-2800.safetensors
With REPA (representation alignment to a teacher's features; dit/README.md says what it gained):
    /usr/bin/python3 scripts/torch_repa_teacher.py --count 20000 --out out/repa-teacher.npy
    /usr/bin/python3 scripts/torch_quick_recipe.py --latents out/synthetic/latents.safetensors --repa out/repa-teacher.npy \
        --repa-depth 1 --repa-lambda 2 --out out/torch-repa
"""
import argparse, json, math, os, struct, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument('--latents', required=True, help='a latent cache (safetensors: mean, logvar, labels; metadata scale_factor, classes)')
p.add_argument('--hidden', type=int, default=128); p.add_argument('--depth', type=int, default=4)
p.add_argument('--heads', type=int, default=4); p.add_argument('--patch', type=int, default=1)
p.add_argument('--batch', type=int, default=16); p.add_argument('--lr', type=float, default=1e-3)
p.add_argument('--warmup', type=int, default=50, help='linear learning-rate warm-up steps')
p.add_argument('--steps', type=int, default=2800); p.add_argument('--ema', type=float, default=0.999)
p.add_argument('--min-snr', type=float, default=5, help='γ of Min-SNR-γ (0: plain MSE)')
p.add_argument('--timesteps', default='uniform', help="'uniform', or 'logit:M:S' (t/1000 = sigmoid(N(M, S²)), as SD3)")
p.add_argument('--save-at', default='', help='comma-separated steps to write EMA weights at (the last step always)')
p.add_argument('--out', default='out/torch-quick', help='weights go to OUT-<step>.safetensors')
p.add_argument('--seed', type=int, default=0); p.add_argument('--threads', type=int, default=1)
p.add_argument('--repa', metavar='FEATURES', help='REPA: also align the tokens after block --repa-depth, through an MLP, with these teacher features '
               '(.npy [N, tokens, F], from torch_repa_teacher.py) by cosine similarity')
p.add_argument('--repa-depth', type=int, default=1); p.add_argument('--repa-lambda', type=float, default=2, help="the alignment loss's weight")
p.add_argument('--label-gain', metavar='WEIGHTS', help='instead of training: how much the label lowers the ε-MSE of these weights at each t')
a = p.parse_args()
torch.manual_seed(a.seed); torch.set_num_threads(a.threads)


def read_safetensors(fn):
    buf = open(fn, 'rb').read(); n = struct.unpack('<Q', buf[:8])[0]; header = json.loads(buf[8:8 + n]); out = {}
    for k, v in header.items():
        if k == '__metadata__': continue
        s, e = v['data_offsets']
        out[k] = np.frombuffer(buf[8 + n + s: 8 + n + e], dtype={'F32': np.float32, 'I32': np.int32}[v['dtype']]).reshape(v['shape'])
    return out, header.get('__metadata__', {})


def write_safetensors(fn, tensors, meta):
    header = {'__metadata__': meta}; off = 0; blobs = []
    for k, t in tensors.items():
        b = t.detach().float().contiguous().numpy().tobytes()
        header[k] = {'dtype': 'F32', 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}; off += len(b); blobs.append(b)
    h = json.dumps(header).encode(); h += b' ' * ((8 - len(h) % 8) % 8)
    with open(fn + '.tmp', 'wb') as f:
        f.write(struct.pack('<Q', len(h))); f.write(h); [f.write(b) for b in blobs]
    os.replace(fn + '.tmp', fn)


# ---- the model, as the official models.py ----
def modulate(x, shift, scale): return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class TimestepEmbedder(nn.Module):
    def __init__(s, D, freq=256):
        super().__init__(); s.mlp = nn.Sequential(nn.Linear(freq, D), nn.SiLU(), nn.Linear(D, D)); s.freq = freq

    def forward(s, t):
        half = s.freq // 2; f = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        arg = t[:, None].float() * f[None]
        return s.mlp(torch.cat([torch.cos(arg), torch.sin(arg)], -1))


class Attention(nn.Module):
    def __init__(s, D, heads):
        super().__init__(); s.qkv = nn.Linear(D, 3 * D); s.proj = nn.Linear(D, D); s.heads = heads

    def forward(s, x):
        B, T, D = x.shape
        q, k, v = s.qkv(x).reshape(B, T, 3, s.heads, D // s.heads).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1) * (D // s.heads) ** -0.5).softmax(-1)  # torch 1.13 has no fused SDPA
        return s.proj((att @ v).transpose(1, 2).reshape(B, T, D))


class Mlp(nn.Module):
    def __init__(s, D, hidden):
        super().__init__(); s.fc1 = nn.Linear(D, hidden); s.fc2 = nn.Linear(hidden, D)

    def forward(s, x): return s.fc2(F.gelu(s.fc1(x), approximate='tanh'))


class DiTBlock(nn.Module):
    def __init__(s, D, heads):
        super().__init__()
        s.norm1 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6); s.attn = Attention(D, heads)
        s.norm2 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6); s.mlp = Mlp(D, 4 * D)
        s.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * D))

    def forward(s, x, c):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = s.adaLN_modulation(c).chunk(6, 1)
        x = x + gate_msa.unsqueeze(1) * s.attn(modulate(s.norm1(x), shift_msa, scale_msa))
        return x + gate_mlp.unsqueeze(1) * s.mlp(modulate(s.norm2(x), shift_mlp, scale_mlp))


class FinalLayer(nn.Module):
    def __init__(s, D, patch, out_channels):
        super().__init__()
        s.norm_final = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6); s.linear = nn.Linear(D, patch * patch * out_channels)
        s.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(D, 2 * D))

    def forward(s, x, c):
        shift, scale = s.adaLN_modulation(c).chunk(2, 1)
        return s.linear(modulate(s.norm_final(x), shift, scale))


def sincos_pos_embed(D, grid):
    def one(d, pos):
        omega = 1. / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.)); o = np.einsum('m,d->md', pos.reshape(-1), omega)
        return np.concatenate([np.sin(o), np.cos(o)], 1)
    g = np.stack(np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32)), 0)
    return np.concatenate([one(D // 2, g[0]), one(D // 2, g[1])], 1)


class DiT(nn.Module):
    def __init__(s, size, channels, D, depth, heads, patch, classes=10):
        super().__init__(); s.patch = patch; s.grid = size // patch; s.out_channels = 2 * channels
        s.x_embedder = nn.Module(); s.x_embedder.proj = nn.Conv2d(channels, D, patch, patch)
        s.t_embedder = TimestepEmbedder(D)
        s.y_embedder = nn.Module(); s.y_embedder.embedding_table = nn.Embedding(classes + 1, D)
        s.pos_embed = nn.Parameter(torch.from_numpy(sincos_pos_embed(D, s.grid)).float().unsqueeze(0), requires_grad=False)
        s.blocks = nn.ModuleList([DiTBlock(D, heads) for _ in range(depth)]); s.final_layer = FinalLayer(D, patch, s.out_channels)
        for m in s.modules():
            if isinstance(m, nn.Linear): nn.init.xavier_uniform_(m.weight); nn.init.constant_(m.bias, 0)
        w = s.x_embedder.proj.weight.data; nn.init.xavier_uniform_(w.view(w.shape[0], -1)); nn.init.constant_(s.x_embedder.proj.bias, 0)
        nn.init.normal_(s.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(s.t_embedder.mlp[0].weight, std=0.02); nn.init.normal_(s.t_embedder.mlp[2].weight, std=0.02)
        for m in [*(b.adaLN_modulation[-1] for b in s.blocks), s.final_layer.adaLN_modulation[-1], s.final_layer.linear]:
            nn.init.constant_(m.weight, 0); nn.init.constant_(m.bias, 0)

    def forward(s, x, t, y):
        x = s.x_embedder.proj(x).flatten(2).transpose(1, 2) + s.pos_embed
        c = s.t_embedder(t) + s.y_embedder.embedding_table(y)
        for i, b in enumerate(s.blocks):
            x = b(x, c)
            if i == a.repa_depth - 1: s.aligned = x  # the tokens REPA aligns
        x = s.final_layer(x, c); B, g, p = x.shape[0], s.grid, s.patch
        return x.reshape(B, g, g, p, p, s.out_channels).permute(0, 5, 1, 3, 2, 4).reshape(B, s.out_channels, g * p, g * p)


# ---- the diffusion, as the official gaussian_diffusion.py (linear schedule, learned range variance) ----
T = 1000
betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64); alphas = 1 - betas; abar = torch.cumprod(alphas, 0)
abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
post_var = betas * (1 - abar_prev) / (1 - abar); post_logvar = torch.log(torch.cat([post_var[1:2], post_var[1:]]))
post_c1 = betas * abar_prev.sqrt() / (1 - abar); post_c2 = (1 - abar_prev) * alphas.sqrt() / (1 - abar)
snr = abar / (1 - abar)


def at(v, t): return v[t].float().view(-1, 1, 1, 1)
def normal_kl(m1, l1, m2, l2): return 0.5 * (-1 + l2 - l1 + torch.exp(l1 - l2) + (m1 - m2) ** 2 * torch.exp(-l2))
def approx_cdf(x): return 0.5 * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def discretized_log_likelihood(x, mean, log_scale):
    c = x - mean; inv = torch.exp(-log_scale)
    cdf_plus = approx_cdf(inv * (c + 1 / 255)); cdf_minus = approx_cdf(inv * (c - 1 / 255))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12)); log_one_minus = torch.log((1 - cdf_minus).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus, torch.log((cdf_plus - cdf_minus).clamp(min=1e-12))))


def losses(model, x0, t, y, noise, gamma):
    C = x0.shape[1]
    xt = at(abar.sqrt(), t) * x0 + at((1 - abar).sqrt(), t) * noise
    out = model(xt, t, y); eps, v = out[:, :C], out[:, C:]
    mse = ((noise - eps) ** 2).mean((1, 2, 3))
    weight = (snr[t].clamp(max=gamma) / snr[t]).float() if gamma > 0 else torch.ones_like(mse)
    # L_vlb trains the variance only (the mean is frozen, as the official code's `frozen_out`).
    frac = (v + 1) / 2; logvar = frac * at(torch.log(betas), t) + (1 - frac) * at(post_logvar, t)
    x0_hat = (xt - at((1 - abar).sqrt(), t) * eps.detach()) / at(abar.sqrt(), t)
    mean_hat = at(post_c1, t) * x0_hat + at(post_c2, t) * xt; mean_true = at(post_c1, t) * x0 + at(post_c2, t) * xt
    kl = normal_kl(mean_true, at(post_logvar, t), mean_hat, logvar).mean((1, 2, 3)) / math.log(2)
    nll = -discretized_log_likelihood(x0, mean_hat, 0.5 * logvar).mean((1, 2, 3)) / math.log(2)
    return weight * mse + torch.where(t == 0, nll, kl), mse


lat, meta = read_safetensors(a.latents)
mean = torch.from_numpy(lat['mean'].copy()); std = torch.exp(0.5 * torch.from_numpy(lat['logvar'].copy()))
labels = torch.from_numpy(lat['labels'].astype(np.int64)); scale = float(meta['scale_factor'])
N, C, H, W = mean.shape; K = len(json.loads(meta['classes']))
model = DiT(H, C, a.hidden, a.depth, a.heads, a.patch, K)

if a.label_gain:
    w, _ = read_safetensors(a.label_gain); model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in w.items()}); model.eval()
    g = torch.Generator().manual_seed(1); idx = torch.randperm(N, generator=g)[:2000]
    x0 = (mean[idx] + std[idx] * torch.randn(2000, C, H, W, generator=g)) * scale; y = labels[idx]
    wrong = (y + 1 + torch.randint(0, K - 1, y.shape, generator=g)) % K
    with torch.no_grad():
        for tt in [50, 100, 200, 300, 400, 500, 600, 700, 800, 900]:
            t = torch.full((2000,), tt); n = torch.randn(x0.shape, generator=g)
            xt = at(abar.sqrt(), t) * x0 + at((1 - abar).sqrt(), t) * n
            mse = {name: sum(((model(xt[i:i + 250], t[i:i + 250], yy[i:i + 250])[:, :C] - n[i:i + 250]) ** 2).mean().item() for i in range(0, 2000, 250)) / 8
                   for name, yy in [('true', y), ('null', torch.full_like(y, K)), ('wrong', wrong)]}
            print(f't {tt:4d}  ε-MSE with the true label {mse["true"]:.4f}  null/true {mse["null"] / mse["true"]:.4f}  wrong/true {mse["wrong"] / mse["true"]:.4f}', flush=True)
    raise SystemExit(0)

ema = DiT(H, C, a.hidden, a.depth, a.heads, a.patch, K); ema.load_state_dict(model.state_dict()); ema.requires_grad_(False)
teacher = torch.from_numpy(np.load(a.repa)) if a.repa else None
if a.repa and (teacher.shape[0] != N or teacher.shape[1] != (H // a.patch) ** 2 or not 1 <= a.repa_depth <= a.depth):
    raise SystemExit(f'--repa {a.repa}: features {list(teacher.shape)} need one row per latent of {a.latents} ({N}) and one vector per token '
                     f'({(H // a.patch) ** 2}), and --repa-depth {a.repa_depth} a block of the {a.depth}')
# REPA's projector (three layers, SiLU) maps tokens to the teacher's width; it is trained, never saved.
projector = nn.Sequential(nn.Linear(a.hidden, 256), nn.SiLU(), nn.Linear(256, 256), nn.SiLU(), nn.Linear(256, teacher.shape[2])) if a.repa else nn.Sequential()
opt = torch.optim.AdamW([*model.parameters(), *projector.parameters()], lr=a.lr, weight_decay=0)
save_at = {int(s) for s in a.save_at.split(',') if s} | {a.steps}
config = {'input_size': H, 'patch_size': a.patch, 'in_channels': C, 'hidden_size': a.hidden, 'depth': a.depth, 'num_heads': a.heads, 'mlp_ratio': 4,
          'class_dropout_prob': 0.1, 'num_classes': K, 'learn_sigma': True, 'conditioning': 'adaLN-Zero'}
print(f'{sum(q.numel() for q in model.parameters()) / 1e6:.2f} M parameters; {N} latents {C}x{H}x{W}', flush=True)
g = torch.Generator().manual_seed(a.seed); t0 = time.time(); running = None; alignment = None
for step in range(1, a.steps + 1):
    idx = torch.randint(0, N, (a.batch,), generator=g)
    x0 = (mean[idx] + std[idx] * torch.randn(a.batch, C, H, W, generator=g)) * scale
    y = torch.where(torch.rand(a.batch, generator=g) < 0.1, K, labels[idx])  # label dropout → the null class
    if a.timesteps == 'uniform': t = torch.randint(0, T, (a.batch,), generator=g)
    else:
        _, m, s = a.timesteps.split(':'); t = (torch.sigmoid(float(m) + float(s) * torch.randn(a.batch, generator=g)) * T).long().clamp(0, T - 1)
    loss, mse = losses(model, x0, t, y, torch.randn(x0.shape, generator=g), a.min_snr)
    for group in opt.param_groups: group['lr'] = a.lr * min(1, step / max(1, a.warmup))
    total = loss.mean()
    if a.repa:
        cos = F.cosine_similarity(projector(model.aligned), teacher[idx].float(), dim=-1).mean(); total = total - a.repa_lambda * cos
        alignment = cos.item() if alignment is None else 0.98 * alignment + 0.02 * cos.item()
    opt.zero_grad(set_to_none=True); total.backward(); opt.step()
    decay = min(a.ema, (1 + step) / (10 + step))
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()): pe.mul_(decay).add_(pm, alpha=1 - decay)
    running = mse.mean().item() if running is None else 0.98 * running + 0.02 * mse.mean().item()
    if step % 200 == 0: print(f'step {step}  ε-MSE {running:.4f}  {step / (time.time() - t0):.1f} steps/s' + (f'  cosine to the teacher {alignment:.3f}' if a.repa else ''), flush=True)
    if step in save_at:
        file = f'{a.out}-{step}.safetensors'
        write_safetensors(file, dict(ema.state_dict()), {'config': json.dumps(config), 'scale_factor': str(scale), 'classes': meta['classes'],
                                                          'schedule': 'linear', 'dataset': meta.get('dataset', ''), 'step': str(step), 'weights': 'ema'})
        print(f'wrote {file}', flush=True)
print(f'done in {time.time() - t0:.0f} s', flush=True)
