#!/usr/bin/python3
"""Training recipes in PyTorch on the CPU: the quick recipe as the official code trains it, and the changes
tried on top of it (flow matching, representation alignment, a class token), each scored by the same judge as
our engine's `dit eval` (through scripts/torch_eval.py), so a recipe can be tried in a third of lavapipe's time
before it is ported to the engine.

The model is the official DiT (models.py: adaLN-Zero blocks, sin-cos positions) written small. Objectives:
- `eps` (default): the official loss (L_simple + L_vlb, learned sigma, linear schedule, 1000 steps) plus the
  preset's Min-SNR-γ on the MSE term;
- `flow`: flow matching with the linear interpolant x_t = (1 − t)·x0 + t·ε and velocity prediction
  v = ε − x0 (SiT, Ma et al. 2024), MSE, no learned sigma; t ~ U(0, 1) or logit-normal; sampled with Euler or
  Heun steps of the probability-flow ODE.
Additions: REPA (the tokens after block --repa-depth aligned through an MLP with a teacher's per-token features
by cosine similarity, Yu et al. 2024; --repa-until switches it off, as HASTE) and REG (the teacher's global
feature as one more token, noised and denoised jointly with the image, Wu et al. 2025).

It trains on a latent cache from `dit vae encode`, keeps an EMA with the warm-up of `dit train`, and writes the
EMA weights under the official names with the metadata `dit eval --weights` reads. With --eval-at it scores
the EMA weights in-process (samples per class, the judge's accuracy, Fréchet distance beside its floor) and
appends one JSON line per score to OUT-curve.jsonl: a learning curve against training compute.

Needs Debian's PyTorch and a real BLAS: apt-get install python3-torch libopenblas0-pthread. For example:
    /usr/bin/python3 scripts/torch_quick_recipe.py --latents out/synthetic/latents.safetensors --steps 2800 \\
        --eval-at 1400,2800 --out out/lab/quick
    /usr/bin/python3 scripts/torch_quick_recipe.py --latents ... --objective flow --timesteps logit:0:1 --out out/lab/flow
    /usr/bin/python3 scripts/torch_repa_teacher.py --count 20000 --out out/repa-teacher.npy
    /usr/bin/python3 scripts/torch_quick_recipe.py --latents ... --repa out/repa-teacher.npy --repa-depth 1 --repa-lambda 2
"""
import argparse, json, math, os, sys, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument('--latents', required=True, help='a latent cache (safetensors: mean, logvar, labels; metadata scale_factor, classes)')
p.add_argument('--hidden', type=int, default=128); p.add_argument('--depth', type=int, default=4)
p.add_argument('--heads', type=int, default=4); p.add_argument('--patch', type=int, default=1)
p.add_argument('--mlp-ratio', type=float, default=4)
p.add_argument('--batch', type=int, default=16); p.add_argument('--lr', type=float, default=1e-3)
p.add_argument('--beta2', type=float, default=0.999, help="AdamW's β2")
p.add_argument('--warmup', type=int, default=50, help='linear learning-rate warm-up steps')
p.add_argument('--steps', type=int, default=2800); p.add_argument('--ema', type=float, default=0.999)
p.add_argument('--ema-extra', default='', help='more EMA decays (comma-separated), scored beside the main one at the last step')
p.add_argument('--objective', choices=['eps', 'flow'], default='eps')
p.add_argument('--min-snr', type=float, default=5, help='eps: γ of Min-SNR-γ (0: plain MSE)')
p.add_argument('--timesteps', default='uniform', help="'uniform', or 'logit:M:S' (t = sigmoid(N(M, S²)), as SD3)")
p.add_argument('--label-drop', type=float, default=0.1, help='probability of the null label in training')
p.add_argument('--save-at', default='', help='comma-separated steps to write EMA weights at (the last step always)')
p.add_argument('--eval-at', default='', help='comma-separated steps to score the EMA weights at (scripts/torch_eval.py)')
p.add_argument('--eval-per-class', type=int, default=50)
p.add_argument('--eval-sampler', default='', help="eps: 'ddim:25' (default); flow: 'euler:N' or 'heun:N' (default heun:12)")
p.add_argument('--eval-cfg', default='4', help='guidance scales to score, comma-separated')
p.add_argument('--vae', default='weights/vae-synthetic.safetensors', help='the VAE that decodes samples for --eval-at')
p.add_argument('--data', default='synthetic', help='the dataset the judge scores against (synthetic, fashion-mnist)')
p.add_argument('--out', default='out/torch-quick', help='weights go to OUT-<step>.safetensors')
p.add_argument('--seed', type=int, default=0); p.add_argument('--threads', type=int, default=1)
p.add_argument('--repa', metavar='FEATURES', help='REPA: align the tokens after block --repa-depth, through an MLP, with these teacher '
               'features (.npy [N, tokens, F], from torch_repa_teacher.py) by cosine similarity')
p.add_argument('--repa-depth', type=int, default=1); p.add_argument('--repa-lambda', type=float, default=2, help="the alignment loss's weight")
p.add_argument('--repa-until', type=int, default=0, help='switch the alignment off after this step (0: never)')
p.add_argument('--repa-spatial', action='store_true', help="iREPA: a 3×3 conv projector and the teacher's features normalised over the tokens of each image")
p.add_argument('--reg', metavar='FEATURES', help="REG: one more token, the teacher's global feature (.npy [N, F], torch_repa_teacher.py "
               '--global-out), standardised, noised and denoised with the image')
p.add_argument('--reg-beta', type=float, default=0.03, help="the class token's share of the loss")
p.add_argument('--score', nargs='+', metavar='WEIGHTS', help='instead of training: score these saved EMA weights (this run\'s flags must match them)')
p.add_argument('--label-gain', metavar='WEIGHTS', help='instead of training: how much the label lowers the ε-MSE of these weights at each t')
a = p.parse_args()
torch.manual_seed(a.seed); torch.set_num_threads(a.threads)
FLOW = a.objective == 'flow'
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_eval  # noqa: E402
from torch_eval import read_safetensors, write_safetensors  # noqa: E402


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
    def __init__(s, D, heads, mlp_ratio):
        super().__init__()
        s.norm1 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6); s.attn = Attention(D, heads)
        s.norm2 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6); s.mlp = Mlp(D, int(D * mlp_ratio))
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
    """The official DiT; with `reg_dim` one more token (REG): its input projection, its own output head."""

    def __init__(s, size, channels, D, depth, heads, patch, classes, learn_sigma, mlp_ratio=4, reg_dim=0):
        super().__init__(); s.patch = patch; s.grid = size // patch; s.out_channels = 2 * channels if learn_sigma else channels
        s.x_embedder = nn.Module(); s.x_embedder.proj = nn.Conv2d(channels, D, patch, patch)
        s.t_embedder = TimestepEmbedder(D)
        s.y_embedder = nn.Module(); s.y_embedder.embedding_table = nn.Embedding(classes + 1, D)
        s.pos_embed = nn.Parameter(torch.from_numpy(sincos_pos_embed(D, s.grid)).float().unsqueeze(0), requires_grad=False)
        s.blocks = nn.ModuleList([DiTBlock(D, heads, mlp_ratio) for _ in range(depth)]); s.final_layer = FinalLayer(D, patch, s.out_channels)
        s.reg_dim = reg_dim
        if reg_dim:
            s.reg_embedder = nn.Linear(reg_dim, D); s.reg_pos = nn.Parameter(torch.zeros(1, 1, D)); s.reg_head = nn.Linear(D, reg_dim)
        for m in s.modules():
            if isinstance(m, nn.Linear): nn.init.xavier_uniform_(m.weight); nn.init.constant_(m.bias, 0)
        w = s.x_embedder.proj.weight.data; nn.init.xavier_uniform_(w.view(w.shape[0], -1)); nn.init.constant_(s.x_embedder.proj.bias, 0)
        nn.init.normal_(s.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(s.t_embedder.mlp[0].weight, std=0.02); nn.init.normal_(s.t_embedder.mlp[2].weight, std=0.02)
        for m in [*(b.adaLN_modulation[-1] for b in s.blocks), s.final_layer.adaLN_modulation[-1], s.final_layer.linear]:
            nn.init.constant_(m.weight, 0); nn.init.constant_(m.bias, 0)
        if reg_dim: nn.init.constant_(s.reg_head.weight, 0); nn.init.constant_(s.reg_head.bias, 0)

    def forward(s, x, t, y, cls=None):
        x = s.x_embedder.proj(x).flatten(2).transpose(1, 2) + s.pos_embed
        n = x.shape[1]
        if s.reg_dim: x = torch.cat([x, s.reg_embedder(cls).unsqueeze(1) + s.reg_pos], 1)
        c = s.t_embedder(t) + s.y_embedder.embedding_table(y)
        for i, b in enumerate(s.blocks):
            x = b(x, c)
            if i == a.repa_depth - 1: s.aligned = x[:, :n]  # the tokens REPA aligns
        cls_out = None
        if s.reg_dim:
            # The class token's output through the final layer's modulation, then its own head.
            shift, scale = s.final_layer.adaLN_modulation(c).chunk(2, 1)
            cls_out = s.reg_head(modulate(s.final_layer.norm_final(x[:, n:]), shift, scale))[:, 0]
            x = x[:, :n]
        x = s.final_layer(x, c); B, g, p = x.shape[0], s.grid, s.patch
        img = x.reshape(B, g, g, p, p, s.out_channels).permute(0, 5, 1, 3, 2, 4).reshape(B, s.out_channels, g * p, g * p)
        return (img, cls_out) if s.reg_dim else img


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


def eps_losses(model, x0, t, y, noise, gamma):
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


def flow_time(u):
    """The model's timestep input for interpolation time u ∈ [0, 1] (u = 1: pure noise): 1000·u, DiT's range."""
    return u * 1000


def flow_losses(model, x0, u, y, noise, cls=None, cls_noise=None):
    """Linear interpolant x_u = (1 − u)·x0 + u·ε; the model predicts the velocity ε − x0."""
    uu = u.view(-1, 1, 1, 1)
    xt = (1 - uu) * x0 + uu * noise
    if cls is None:
        v = model(xt, flow_time(u), y)
        return ((v - (noise - x0)) ** 2).mean((1, 2, 3)), None
    cls_t = (1 - u[:, None]) * cls + u[:, None] * cls_noise
    v, vc = model(xt, flow_time(u), y, cls_t)
    return ((v - (noise - x0)) ** 2).mean((1, 2, 3)), ((vc - (cls_noise - cls)) ** 2).mean(1)


def draw_time(B, g):
    """Training time: flow u ∈ (0, 1); eps an integer step in [0, T)."""
    if a.timesteps == 'uniform':
        return torch.rand(B, generator=g) if FLOW else torch.randint(0, T, (B,), generator=g)
    _, m, s = a.timesteps.split(':'); u = torch.sigmoid(float(m) + float(s) * torch.randn(B, generator=g))
    return u if FLOW else (u * T).long().clamp(0, T - 1)


# ---- sampling (for --eval-at): DDIM for eps, Euler/Heun ODE steps for flow; guidance on every channel ----
@torch.no_grad()
def sample(model, labels, shape, cfg, sampler, seed, null):
    g = torch.Generator().manual_seed(seed)
    n = len(labels); x = torch.randn(n, *shape, generator=g)
    cls = torch.randn(n, model.reg_dim, generator=g) if model.reg_dim else None
    y = torch.tensor(labels); yn = torch.full_like(y, null)

    def guided(x, tt, cls):
        xx = torch.cat([x, x]); yy = torch.cat([y, yn]); ttt = torch.cat([tt, tt])
        out = model(xx, ttt, yy, torch.cat([cls, cls])) if cls is not None else model(xx, ttt, yy)
        o, oc = out if cls is not None else (out, None)
        C = shape[0]; o = o[:, :C]
        o = o[n:] + cfg * (o[:n] - o[n:])
        if oc is not None: oc = oc[n:] + cfg * (oc[:n] - oc[n:])
        return o, oc

    kind, steps = sampler.split(':'); steps = int(steps)
    if kind == 'ddim':
        ts = list(range(0, T, T // steps))[::-1]
        for i, t in enumerate(ts):
            tt = torch.full((n,), t); eps, _ = guided(x, tt, None)
            ab = abar[t].item(); abp = abar[ts[i + 1]].item() if i + 1 < len(ts) else 1.0
            x0 = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
            x = math.sqrt(abp) * x0 + math.sqrt(1 - abp) * eps
        return x
    us = torch.linspace(1, 0, steps + 1)
    for i in range(steps):
        u0, u1 = us[i].item(), us[i + 1].item(); h = u1 - u0
        v, vc = guided(x, torch.full((n,), flow_time(u0)), cls)
        if kind == 'heun' and u1 > 0:
            xp = x + h * v; cp = cls + h * vc if cls is not None else None
            v2, vc2 = guided(xp, torch.full((n,), flow_time(u1)), cp)
            v = (v + v2) / 2; vc = (vc + vc2) / 2 if cls is not None else None
        x = x + h * v
        if cls is not None: cls = cls + h * vc
    return x


lat, meta = read_safetensors(a.latents)
mean = torch.from_numpy(lat['mean'].copy()); std = torch.exp(0.5 * torch.from_numpy(lat['logvar'].copy()))
labels = torch.from_numpy(lat['labels'].astype(np.int64)); scale = float(meta['scale_factor'])
N, C, H, W = mean.shape; K = len(json.loads(meta['classes']))
reg = None
if a.reg:
    reg = torch.from_numpy(np.load(a.reg).astype(np.float32))
    if reg.shape[0] != N or reg.ndim != 2: raise SystemExit(f'--reg {a.reg}: features {list(reg.shape)} need one row per latent of {a.latents} ({N})')
    reg = (reg - reg.mean(0)) / (reg.std(0) + 1e-6)  # standardised, as the latents are
make = lambda: DiT(H, C, a.hidden, a.depth, a.heads, a.patch, K, learn_sigma=not FLOW, mlp_ratio=a.mlp_ratio, reg_dim=reg.shape[1] if reg is not None else 0)
model = make()

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

ema = make(); ema.load_state_dict(model.state_dict()); ema.requires_grad_(False)
extra_emas = {float(d): make() for d in a.ema_extra.split(',') if d}
for e in extra_emas.values(): e.load_state_dict(model.state_dict()); e.requires_grad_(False)
teacher = torch.from_numpy(np.load(a.repa)) if a.repa else None
if a.repa and (teacher.shape[0] != N or teacher.shape[1] != (H // a.patch) ** 2 or not 1 <= a.repa_depth <= a.depth):
    raise SystemExit(f'--repa {a.repa}: features {list(teacher.shape)} need one row per latent of {a.latents} ({N}) and one vector per token '
                     f'({(H // a.patch) ** 2}), and --repa-depth {a.repa_depth} a block of the {a.depth}')
# REPA's projector (three layers, SiLU) maps tokens to the teacher's width; it is trained, never saved.
projector = nn.Sequential(nn.Linear(a.hidden, 256), nn.SiLU(), nn.Linear(256, 256), nn.SiLU(), nn.Linear(256, teacher.shape[2])) if a.repa else nn.Sequential()
if a.repa and a.repa_spatial:
    G = H // a.patch
    class ConvProjector(nn.Module):
        def __init__(s):
            super().__init__(); s.conv = nn.Conv2d(a.hidden, teacher.shape[2], 3, 1, 1)
        def forward(s, x):  # tokens [B, G·G, D] → [B, G·G, F]
            B = x.shape[0]
            return s.conv(x.transpose(1, 2).reshape(B, a.hidden, G, G)).flatten(2).transpose(1, 2)
    projector = ConvProjector()
    teacher = teacher.float(); teacher = (teacher - teacher.mean(1, keepdim=True)) / (teacher.std(1, keepdim=True) + 1e-6)
opt = torch.optim.AdamW([*model.parameters(), *projector.parameters()], lr=a.lr, betas=(0.9, a.beta2), weight_decay=0)
save_at = {int(s) for s in a.save_at.split(',') if s} | {a.steps}
eval_at = {int(s) for s in a.eval_at.split(',') if s}
config = {'input_size': H, 'patch_size': a.patch, 'in_channels': C, 'hidden_size': a.hidden, 'depth': a.depth, 'num_heads': a.heads, 'mlp_ratio': a.mlp_ratio,
          'class_dropout_prob': a.label_drop, 'num_classes': K, 'learn_sigma': not FLOW, 'conditioning': 'adaLN-Zero'}
# Training compute as the paper counts it: multiply-adds of the forward (one image) × 3 for a training step.
forward_macs = None


def count_forward_macs(m):
    macs = 0
    def hook(mod, inp, out):
        nonlocal macs
        if isinstance(mod, nn.Linear): macs += inp[0].numel() // inp[0].shape[-1] * mod.in_features * mod.out_features
        elif isinstance(mod, nn.Conv2d): macs += out.numel() * mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]
    hs = [q.register_forward_hook(hook) for q in m.modules() if isinstance(q, (nn.Linear, nn.Conv2d))]
    toks = (H // a.patch) ** 2 + (1 if reg is not None else 0)
    with torch.no_grad():
        args = (torch.zeros(1, C, H, W), torch.zeros(1), torch.zeros(1, dtype=torch.long)) + ((torch.zeros(1, reg.shape[1]),) if reg is not None else ())
        m(*args)
    for h in hs: h.remove()
    D = a.hidden
    return macs + a.depth * 2 * toks * toks * D  # attention's QKᵀ and AV


forward_macs = count_forward_macs(model)
repa_macs = sum(q.numel() for q in projector.parameters() if q.dim() >= 2) * (H // a.patch) ** 2
print(f'{sum(q.numel() for q in model.parameters()) / 1e6:.3f} M parameters; {forward_macs / 1e6:.1f} M multiply-adds per image forward; '
      f'{N} latents {C}x{H}x{W}; objective {a.objective}', flush=True)


def score(step, images_seen, train_seconds, weights=None, tag=''):
    global scorer, vae
    if 'scorer' not in globals():
        scorer = torch_eval.Scorer(a.data); vae = torch_eval.load_vae(a.vae)
    net = weights or ema
    net.eval()
    sampler = a.eval_sampler or ('heun:12' if FLOW else 'ddim:25')
    lab = [k for k in range(K) for _ in range(a.eval_per_class)]
    for cfg in [float(c) for c in a.eval_cfg.split(',')]:
        t0 = time.time(); z = torch.cat([sample(net, lab[i:i + 250], (C, H, W), cfg, sampler, a.seed * 7919 + i, K) for i in range(0, len(lab), 250)])
        with torch.no_grad(): imgs = torch_eval.to_uint8(vae.decode(z / scale))
        r = scorer.score(imgs, lab)
        row = {'run': os.path.basename(a.out) + tag, 'step': step, 'images': images_seen, 'train_macs': images_seen * (3 * forward_macs + 3 * repa_macs),
               'train_s': round(train_seconds), 'sampler': sampler, 'cfg': cfg, 'accuracy': r['accuracy'], 'frechet': r['frechet'],
               'floor': r['frechet_real'], 'per_class': r['per_class'], 'eval_s': round(time.time() - t0)}
        print(f"  eval{tag} step {step} {sampler} cfg {cfg}: accuracy {r['accuracy']:.3f}, Fréchet {r['frechet']:.2f} (floor {r['frechet_real']:.3f}) "
              f"[{row['eval_s']} s]", flush=True)
        with open(f'{a.out}-curve.jsonl', 'a') as f: f.write(json.dumps(row) + '\n')


if a.score:
    for file in a.score:
        w, m = read_safetensors(file); ema.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in w.items()})
        step = int(m.get('step', 0)); score(step, step * a.batch, 0)
    raise SystemExit(0)
os.makedirs(os.path.dirname(a.out) or '.', exist_ok=True)
g = torch.Generator().manual_seed(a.seed); t0 = time.time(); train_s = 0.0; running = None; alignment = None; running_cls = None
for step in range(1, a.steps + 1):
    ts = time.time()
    idx = torch.randint(0, N, (a.batch,), generator=g)
    x0 = (mean[idx] + std[idx] * torch.randn(a.batch, C, H, W, generator=g)) * scale
    y = torch.where(torch.rand(a.batch, generator=g) < a.label_drop, K, labels[idx])  # label dropout → the null class
    t = draw_time(a.batch, g)
    noise = torch.randn(x0.shape, generator=g)
    if FLOW:
        loss, cls_loss = flow_losses(model, x0, t, y, noise, reg[idx] if reg is not None else None,
                                     torch.randn(a.batch, reg.shape[1], generator=g) if reg is not None else None)
        mse = loss
    else:
        loss, mse = eps_losses(model, x0, t, y, noise, a.min_snr); cls_loss = None
    for group in opt.param_groups: group['lr'] = a.lr * min(1, step / max(1, a.warmup))
    total = loss.mean()
    if cls_loss is not None:
        total = total + a.reg_beta * cls_loss.mean()
        running_cls = cls_loss.mean().item() if running_cls is None else 0.98 * running_cls + 0.02 * cls_loss.mean().item()
    if a.repa and (a.repa_until == 0 or step <= a.repa_until):
        cos = F.cosine_similarity(projector(model.aligned), teacher[idx].float(), dim=-1).mean(); total = total - a.repa_lambda * cos
        alignment = cos.item() if alignment is None else 0.98 * alignment + 0.02 * cos.item()
    opt.zero_grad(set_to_none=True); total.backward(); opt.step()
    with torch.no_grad():
        for d, e in [(a.ema, ema), *extra_emas.items()]:
            decay = min(d, (1 + step) / (10 + step))
            for pe, pm in zip(e.parameters(), model.parameters()): pe.mul_(decay).add_(pm, alpha=1 - decay)
    train_s += time.time() - ts
    running = mse.mean().item() if running is None else 0.98 * running + 0.02 * mse.mean().item()
    if step % 200 == 0:
        print(f'step {step}  {"v" if FLOW else "ε"}-MSE {running:.4f}  {step / train_s:.1f} steps/s' + (f'  cosine to the teacher {alignment:.3f}' if alignment is not None else '')
              + (f'  class-token MSE {running_cls:.4f}' if running_cls is not None else ''), flush=True)
    if step in save_at:
        file = f'{a.out}-{step}.safetensors'
        write_safetensors(file, dict(ema.state_dict()), {'config': json.dumps(config), 'scale_factor': str(scale), 'classes': meta['classes'],
                                                          'schedule': 'linear', 'dataset': meta.get('dataset', ''), 'step': str(step), 'weights': 'ema',
                                                          'objective': a.objective})
        print(f'wrote {file}', flush=True)
    if step in eval_at:
        score(step, step * a.batch, train_s)
        if step == a.steps:
            for d, e in extra_emas.items(): score(step, step * a.batch, train_s, e, f'-ema{d}')
print(f'done in {time.time() - t0:.0f} s (training {train_s:.0f} s)', flush=True)
