"""PyTorch baseline for the GPU check, written from DIT_SPEC (not the official code): fp32 matmul (TF32 off)
and a DiT forward / training step of the same configs as bench/dit.ts, on the same card, in the same call.
Prints one JSON line per measurement. Its DiT is also the CPU peer's (peer_torch_cpu.py)."""
import json, math, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

# torch < 2.0 (Debian's 1.13, the CPU peer) has no fused attention: the same product written out.
sdpa = getattr(F, 'scaled_dot_product_attention', None) or (lambda q, k, v: torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1) @ v)

def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]

class Block(nn.Module):
    def __init__(s, D, H):
        super().__init__()
        s.H = H
        s.n1 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6); s.n2 = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        s.qkv = nn.Linear(D, 3 * D); s.proj = nn.Linear(D, D)
        s.fc1 = nn.Linear(D, 4 * D); s.fc2 = nn.Linear(4 * D, D)
        s.ada = nn.Linear(D, 6 * D)
    def forward(s, x, c):
        B, T, D = x.shape
        sm, cm, gm, sp, cp, gp = s.ada(F.silu(c)).chunk(6, dim=1)
        q, k, v = s.qkv(modulate(s.n1(x), sm, cm)).reshape(B, T, 3, s.H, D // s.H).permute(2, 0, 3, 1, 4)
        a = sdpa(q, k, v).transpose(1, 2).reshape(B, T, D)
        x = x + gm[:, None] * s.proj(a)
        return x + gp[:, None] * s.fc2(F.gelu(s.fc1(modulate(s.n2(x), sp, cp)), approximate='tanh'))

class DiT(nn.Module):
    def __init__(s, I=32, p=2, C=4, D=384, N=12, H=6, K=1000):
        super().__init__()
        s.p, s.C = p, C
        s.x_emb = nn.Conv2d(C, D, p, p)
        s.pos = nn.Parameter(torch.zeros(1, (I // p) ** 2, D), requires_grad=False)
        s.t1 = nn.Linear(256, D); s.t2 = nn.Linear(D, D)
        s.y = nn.Embedding(K + 1, D)
        s.blocks = nn.ModuleList([Block(D, H) for _ in range(N)])
        s.fn = nn.LayerNorm(D, elementwise_affine=False, eps=1e-6)
        s.fada = nn.Linear(D, 2 * D); s.flin = nn.Linear(D, p * p * 2 * C)
    def forward(s, x, t, y):
        h = s.x_emb(x).flatten(2).transpose(1, 2) + s.pos
        f = torch.exp(-math.log(10000) * torch.arange(128, device=x.device, dtype=torch.float32) / 128)
        a = t[:, None].float() * f[None]
        c = s.t2(F.silu(s.t1(torch.cat([torch.cos(a), torch.sin(a)], -1)))) + s.y(y)
        for b in s.blocks: h = b(h, c)
        sh, sc = s.fada(F.silu(c)).chunk(2, dim=1)
        o = s.flin(modulate(s.fn(h), sh, sc))
        B, T, _ = o.shape; g = int(T ** 0.5)
        o = o.reshape(B, g, g, s.p, s.p, 2 * s.C)
        return torch.einsum('nhwpqc->nchpwq', o).reshape(B, 2 * s.C, g * s.p, g * s.p)

def main(dev='cuda'):
    print(json.dumps({'torch': torch.__version__, 'gpu': torch.cuda.get_device_name()}))
    for n in [1024, 2048, 4096]:
        a = torch.randn(n, n, device=dev); b = torch.randn(n, n, device=dev)
        ms = timed(lambda: a @ b)
        print(json.dumps({'bench': 'matmul fp32 (TF32 off)', 'n': n, 'ms': ms, 'gflops': 2 * n ** 3 / ms / 1e6}))
    B = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    for name in (sys.argv[2].split(',') if len(sys.argv) > 2 else ['DiT-S/2', 'DiT-XL/2']):
        D, N, H, p = CONFIGS[name]
        m = DiT(D=D, N=N, H=H, p=p).to(dev)
        x = torch.randn(B, 4, 32, 32, device=dev); t = torch.randint(0, 1000, (B,), device=dev); y = torch.randint(0, 1000, (B,), device=dev)
        with torch.no_grad(): fwd = timed(lambda: m(x, t, y))
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0)
        def step():
            loss = F.mse_loss(m(x, t, y)[:, :4], x); opt.zero_grad(); loss.backward(); opt.step()
        tr = timed(step, 5)
        print(json.dumps({'bench': 'dit', 'model': name, 'batch': B, 'forward_ms': fwd, 'train_step_ms': tr}))

def timed(f, reps=10):
    for _ in range(3): f()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); f(); torch.cuda.synchronize(); ts.append((time.perf_counter() - t0) * 1000)
    return sorted(ts)[len(ts) // 2]

CONFIGS = {'DiT-S/2': (384, 12, 6, 2), 'DiT-B/2': (768, 12, 12, 2), 'DiT-XL/2': (1152, 28, 16, 2)}

if __name__ == '__main__':
    main()
