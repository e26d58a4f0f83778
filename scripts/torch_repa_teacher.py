#!/usr/bin/python3
"""The teacher for REPA (representation alignment, Yu et al. 2024) in `torch_quick_recipe.py --repa`: a small
convolutional classifier, deliberately not the judge's architecture (stride-2 convolutions, BatchNorm, ReLU;
the judge has average pooling, GroupNorm, SiLU), trained on the built-in data's first N train images (the
images behind `dit vae encode --count N`), and its 8×8 feature map of each of them, one 96-wide vector per
latent pixel (the DiT's tokens at patch 1), written as float16 [N, 64, 96]; with --global-out also its global
feature of each image (the head's pooled 128-wide vector before the logits), the class token of REG. Run it from the project root after
`npm run build` (it generates the images with the built engine):

    /usr/bin/python3 scripts/torch_repa_teacher.py --count 20000 --epochs 4 --out out/repa-teacher.npy
"""
import argparse, subprocess, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
p.add_argument('--count', type=int, default=20000); p.add_argument('--epochs', type=int, default=4)
p.add_argument('--out', default='out/repa-teacher.npy'); p.add_argument('--seed', type=int, default=0)
p.add_argument('--global-out', help='also write the global features [N, 128] here (float16)')
p.add_argument('--norm', choices=['batch', 'group'], default='batch', help="BatchNorm + ReLU, or GroupNorm(8) + GELU as the engine's teacher (dit/teacher.ts)")
a = p.parse_args()
torch.manual_seed(a.seed); torch.set_num_threads(1)


def synthetic(split, count):
    """The built-in data as `dit` generates it (uint8 [count, 3, 32, 32], labels), through the built engine."""
    code = ("import { generateSynthetic } from './build/data/synthetic.js';"
            f"const d = generateSynthetic(0, {split}, {count}); process.stdout.write(d.labels); process.stdout.write(d.images);")
    raw = subprocess.run(['node', '--input-type=module', '-e', code], check=True, capture_output=True).stdout
    labels = np.frombuffer(raw[:count], np.uint8).astype(np.int64)
    images = np.frombuffer(raw[count:], np.uint8).reshape(count, 3, 32, 32).astype(np.float32) / 127.5 - 1
    return torch.from_numpy(images), torch.from_numpy(labels)


def block(i, o, stride):
    if a.norm == 'group': return nn.Sequential(nn.Conv2d(i, o, 3, stride, 1), nn.GroupNorm(8, o, eps=1e-6), nn.GELU(approximate='tanh'))
    return nn.Sequential(nn.Conv2d(i, o, 3, stride, 1), nn.BatchNorm2d(o), nn.ReLU())


features = nn.Sequential(block(3, 32, 1), block(32, 64, 2), block(64, 64, 1), block(64, 96, 2), block(96, 96, 1))  # → 8×8×96
head = nn.Sequential(block(96, 128, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))
model = nn.Sequential(features, head)
X, Y = synthetic(0, a.count); Xt, Yt = synthetic(1, 2000)
opt = torch.optim.Adam(model.parameters(), 2e-3); t0 = time.time()
for epoch in range(a.epochs):
    model.train(); perm = torch.randperm(len(X))
    for i in range(0, len(X), 64):
        b = perm[i:i + 64]; flip = torch.rand(len(b)) < 0.5
        x = torch.where(flip[:, None, None, None], X[b].flip(3), X[b])
        loss = F.cross_entropy(model(x), Y[b]); opt.zero_grad(); loss.backward(); opt.step()
    model.eval()
    with torch.no_grad(): acc = (model(Xt).argmax(1) == Yt).float().mean().item()
    print(f'epoch {epoch + 1}: loss {loss.item():.3f}, accuracy on 2,000 test images {acc:.4f} ({time.time() - t0:.0f} s)', flush=True)
with torch.no_grad():
    f = torch.cat([features(X[i:i + 500]) for i in range(0, len(X), 500)])
    if a.global_out: pooled = torch.cat([head[:3](f[i:i + 500]) for i in range(0, len(f), 500)])
np.save(a.out, f.flatten(2).transpose(1, 2).numpy().astype(np.float16))
if a.global_out:
    np.save(a.global_out, pooled.numpy().astype(np.float16)); print(f'wrote {a.global_out}: {pooled.shape[0]} images × {pooled.shape[1]}', flush=True)
print(f'wrote {a.out}: {f.shape[0]} images × 64 tokens × {f.shape[1]}', flush=True)
