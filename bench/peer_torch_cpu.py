"""The PyTorch-on-the-CPU peer of `dit bench --peers` (Debian's python3-torch), in its own process on the same
cores (torch.set_num_threads(argv[1])): the quick recipe's training step (its model, at its batch argv[5], float32, as
`dit train` steps it: the posterior sample of the latents, label dropout, flow matching's loss, backward,
AdamW and the EMA) and the DiT-S/2 forward at batch argv[2] (argv[4]² latents: 32 for 256 px). The DiT
is torch_dit.py's. Same timing rule as ours: warm-up calls, then the median of the samples — argv[3] of them
for the forward, at least 5 for the training step (ours takes ≥ 5 too).
Prints `PEER {"train_step_ms", "forward_ms", "threads", "torch"}`.
Run alone: `/usr/bin/python3 bench/peer_torch_cpu.py THREADS BATCH REPS LATENT QUICK_BATCH`."""
import json, math, sys, time
import torch
import torch.nn.functional as F
from torch_dit import DiT

if len(sys.argv) != 6: raise SystemExit('usage: peer_torch_cpu.py THREADS BATCH REPS LATENT QUICK_BATCH')
threads, batch, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
latent, B = int(sys.argv[4]), int(sys.argv[5])  # DiT-S/2's latent size (--image-size / 8); the quick recipe's batch
torch.set_num_threads(threads)
torch.manual_seed(0)

def timed(f, reps, warmup=3):
    for _ in range(warmup): f()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); f(); ts.append((time.perf_counter() - t0) * 1000)
    return sorted(ts)[len(ts) // 2]

# The quick recipe (dit/recipes.ts): hidden 128, depth 4, 4 heads, patch 1 on 8×8×4 latents, 10 classes,
# AdamW lr 1e-3 (β2 0.999, no weight decay), EMA. Its objective is flow matching (diffusion/flow.ts):
# u ~ logit-normal(0, 1) = sigmoid(N(0, 1)), x_u = (1 − u)·x0 + u·ε, the DiT sees the time as 1000·u, and the
# loss is the MSE of its output to the velocity ε − x0. Flow matching has no learned variance (learnSigma off:
# our DiT outputs 4 channels); torch_dit's DiT always outputs 2·C = 8, so the step slices the first 4 (the
# extra 4 channels of its final linear cost 128·4 multiply-adds per token, about 0.1% of the step).
# Left out on both sides: the teacher alignment (bench/quickstep.ts's trainer has none).
m = DiT(I=8, p=1, C=4, D=128, N=4, H=4, K=10)
ema = [p.detach().clone() for p in m.parameters()]
opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=0)
mean = torch.randn(256, 4, 8, 8); std = 0.1  # a latent cache's mean and std (logvar log 0.01, as quickstep.ts's)
labels = torch.arange(256) % 10
def step():
    idx = torch.randint(0, 256, (B,))
    x0 = mean[idx] + std * torch.randn(B, 4, 8, 8)
    y = torch.where(torch.rand(B) < 0.1, torch.full((B,), 10), labels[idx])  # label dropout for guidance (class 10 = none)
    u = torch.sigmoid(torch.randn(B)); eps = torch.randn_like(x0)
    uu = u.view(-1, 1, 1, 1)
    loss = F.mse_loss(m((1 - uu) * x0 + uu * eps, 1000 * u, y)[:, :4], eps - x0)
    opt.zero_grad(); loss.backward(); opt.step()
    if not torch.isfinite(loss): raise SystemExit('non-finite loss')  # our divergence check
    with torch.no_grad():
        params = list(m.parameters())
        torch._foreach_mul_(ema, 0.999); torch._foreach_add_(ema, params, alpha=0.001)
train = timed(step, max(reps, 5))

s2 = DiT(I=latent, p=2, C=4, D=384, N=12, H=6, K=1000).eval()
x = torch.randn(batch, 4, latent, latent); t = torch.randint(0, 1000, (batch,)); yy = torch.randint(0, 1000, (batch,))
with torch.no_grad():
    fwd = timed(lambda: s2(x, t, yy), reps, 1)
print('PEER ' + json.dumps({'train_step_ms': train, 'forward_ms': fwd, 'threads': threads, 'torch': torch.__version__}))
