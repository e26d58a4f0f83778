#!/usr/bin/python3
"""The scoring half of `dit eval` in PyTorch on the CPU: the VAE decoder, the uint8 quantisation, the judge
classifier and the Fréchet distances of eval/quality.ts, so recipe experiments (scripts/torch_*.py) are scored in
about a minute instead of the engine's ~5 min on lavapipe. Exploration tooling: the engine stays the reference.

Ported from vae/model.ts (diffusers AutoencoderKL: GroupNorm eps 1e-6 + SiLU, single-head mid-block attention
with scale C^-1/2 and a residual, nearest 2x upsampling then a 3x3 conv, downsampling = pad (0,1,0,1) + stride-2
conv, logvar clamped to [-30, 20]), eval/samples.ts (toUint8 = clamp(floor(127.5x + 128), 0, 255)),
eval/classifier.ts (conv3x3 -> GroupNorm(8, eps 1e-6) + SiLU, 2x2 average pooling before stages 2..4, global
mean = features, linear head; input x/127.5 - 1 as data/dataset.ts imageBatch), eval/quality.ts (reference =
features of the test split's first half, floor = floorSet from the second half, class-balanced like the samples)
and eval/frechet.ts (float64, n-1 covariance, tr((S1 S2)^1/2) = tr((S1^1/2 S2 S1^1/2)^1/2) by two symmetric
eigendecompositions). The real test images are the engine's own: scripts/dump_dataset.mjs writes them once
(out/eval-cache/<data>-test.npz) with the engine's loader; their features are cached beside them per judge file.

Validated against the engine (weights/vae-synthetic.safetensors, weights/classifier-{synthetic,fashion-mnist}):
  * VAE decoder, 500 latents (250 cached posterior means x scale, 250 N(0, 1); node scripts/engine_decode.mjs):
    max |float difference| 2.5e-6 (outputs in [-1.54, 1.30]); uint8 images: 44 of 1,536,000 values differ, by 1,
    all at rounding boundaries (127.5x + 128 within 7e-5 of an integer); scoring the engine's uint8 instead of
    ours: same accuracy, Fréchet 1.4e-6 relative apart.
  * `dit eval --samples DIR --json` vs `--pngs DIR` on 500 engine samples (a 400-step throwaway DiT, ddim 25,
    cfg 4): accuracy 0.116 = 0.116, per_class identical, Fréchet 39.38340 vs 39.38341 (9e-8 relative), floor
    0.0957024 (1.5e-7 relative: the same floor images, float32 features from another backend), judge test
    accuracy 0.9999 = 0.9999.
  * `dit eval --reconstructions --per-class 50` vs `--reconstructions 50` (encoder + decoder + judge): accuracy
    0.954 = 0.954, per_class identical, Fréchet 1.09015 vs 1.09022 (6.6e-5 relative: a few uint8 values at
    rounding boundaries), floor as above.
  * Fashion-MNIST, 500 noisy real test images as grey PNGs: accuracy 0.902 = 0.902, per_class identical,
    Fréchet 1.1e-6 and floor 4e-7 relative apart, judge test accuracy 0.9001 = 0.9001.
  Timing (1 thread, the 2 shared cores at load ~14): 500 latents decoded + judged + Fréchet in 4.4 s of CPU
  (~9 s wall); the real test features once per judge, 13 s CPU (then cached); the engine: ~5 min per checkpoint.
API (import with sys.path.insert(0, 'scripts'); import torch_eval):
  load_vae(path) -> VAE (.decode(z) with z already divided by the scale factor; .encode(x) -> (mean, logvar))
  to_uint8(x) -> uint8 tensor;  load_judge(path) -> Judge (.features(u8), .logits(u8), .forward(x in [-1, 1]))
  read_safetensors(path) -> ({name: array}, metadata);  write_safetensors(path, {name: array or tensor}, metadata)
  load_dataset(data) -> (images uint8 [N,C,H,W], labels, meta);  frechet_distance(g1, g2); gaussian(features)
  Scorer(data='synthetic'|'fashion-mnist', judge=None, real_images=None).score(images_u8, labels) -> dict as
    `dit eval --json`; .score_latents(z, labels, vae, scale) decodes z * (1/scale) first (as sampleImages);
    .reconstruction_ceiling(vae, per_class) as `dit eval --reconstructions`;  read_png_folder(dir, channels)
CLI:
  python3 scripts/torch_eval.py --latents Z.npy --labels L.npy --vae weights/vae-synthetic.safetensors --scale S --data synthetic
  python3 scripts/torch_eval.py --pngs out/samples --data synthetic      (a `dit sample --out-dir` folder)
  python3 scripts/torch_eval.py --reconstructions 50 --vae weights/vae-synthetic.safetensors
"""
import argparse, hashlib, json, os, re, struct, subprocess, sys, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE_DIR = os.path.join(ROOT, 'out', 'eval-cache')


# ------------------------------------------------------------------------------------------ safetensors
def _bf16_to_f32(raw):
    return (raw.astype(np.uint32) << 16).view(np.float32)


def read_safetensors(path):
    """{name: float32 numpy array}, metadata. A diffusers sharded index (.json) is followed to its shards."""
    if path.endswith('.json'):
        idx = json.load(open(path)); out, meta = {}, dict(idx.get('metadata') or {})
        for shard in sorted(set(idx['weight_map'].values())):
            t, m = read_safetensors(os.path.join(os.path.dirname(path), shard)); out.update(t); meta = {**m, **meta}
        return out, {k: v for k, v in meta.items() if isinstance(v, str)}
    buf = open(path, 'rb').read(); n = struct.unpack('<Q', buf[:8])[0]; header = json.loads(buf[8:8 + n])
    meta = header.pop('__metadata__', {}) or {}
    out = {}
    for k, v in header.items():
        raw = buf[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]]
        dt = v['dtype']
        if dt == 'BF16': a = _bf16_to_f32(np.frombuffer(raw, np.uint16))
        else: a = np.frombuffer(raw, {'F32': np.float32, 'F16': np.float16, 'F64': np.float64, 'I64': np.int64, 'I32': np.int32, 'U8': np.uint8}[dt])
        out[k] = a.astype(np.float32).reshape(v['shape']) if dt in ('F32', 'F16', 'BF16', 'F64') else a.reshape(v['shape'])
    return out, meta


def write_safetensors(path, tensors, meta):
    """{name: numpy array or torch tensor (float32, float16 or int32)} and string metadata -> a .safetensors file,
    written to a temporary file and renamed, so a stopped run never leaves a half-written one."""
    header = {'__metadata__': meta}; off = 0; blobs = []
    for k, t in tensors.items():
        a = t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t)
        b = np.ascontiguousarray(a).tobytes()
        header[k] = {'dtype': {'float32': 'F32', 'float16': 'F16', 'int32': 'I32'}[str(a.dtype)], 'shape': list(a.shape), 'data_offsets': [off, off + len(b)]}
        off += len(b); blobs.append(b)
    h = json.dumps(header).encode(); h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path + '.tmp', 'wb') as f:
        f.write(struct.pack('<Q', len(h))); f.write(h); [f.write(b) for b in blobs]
    os.replace(path + '.tmp', path)


def _file_digest(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''): h.update(chunk)
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------ VAE (vae/model.ts)
# Older diffusers names of the mid-block attention (< 0.14, as the sd-vae-ft-mse files) -> current ones.
_LEGACY = re.compile(r'attentions\.(\d+)\.(query|key|value|proj_attn)\.')
_LEGACY_NAMES = dict(query='to_q', key='to_k', value='to_v', proj_attn='to_out.0')


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout, G):
        super().__init__()
        self.norm1 = nn.GroupNorm(G, cin, eps=1e-6); self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(G, cout, eps=1e-6); self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout: self.conv_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        return (self.conv_shortcut(x) if hasattr(self, 'conv_shortcut') else x) + h


class Attention(nn.Module):
    def __init__(self, C, G):
        super().__init__()
        self.group_norm = nn.GroupNorm(G, C, eps=1e-6)
        self.to_q, self.to_k, self.to_v = nn.Linear(C, C), nn.Linear(C, C), nn.Linear(C, C)
        self.to_out = nn.ModuleList([nn.Linear(C, C)])

    def forward(self, x):
        B, C, H, W = x.shape
        t = self.group_norm(x).reshape(B, C, H * W).transpose(1, 2)  # [B, HW, C], token = h*W + w
        q, k, v = self.to_q(t), self.to_k(t), self.to_v(t)
        p = torch.softmax(torch.bmm(q, k.transpose(1, 2)) * (1 / C ** 0.5), dim=-1)
        o = self.to_out[0](torch.bmm(p, v))
        return x + o.transpose(1, 2).reshape(B, C, H, W)


class MidBlock(nn.Module):
    def __init__(self, C, G):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(C, C, G), ResnetBlock(C, C, G)])
        self.attentions = nn.ModuleList([Attention(C, G)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class SampleConv(nn.Module):
    def __init__(self, C):
        super().__init__(); self.conv = nn.Conv2d(C, C, 3)  # padding given per use


class DownBlock(nn.Module):
    def __init__(self, cin, cout, layers, G, down):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(cin if j == 0 else cout, cout, G) for j in range(layers)])
        if down: self.downsamplers = nn.ModuleList([SampleConv(cout)])

    def forward(self, x):
        for r in self.resnets: x = r(x)
        if hasattr(self, 'downsamplers'):  # zero-pad right and bottom, then 3x3 stride 2 without padding
            c = self.downsamplers[0].conv; x = F.conv2d(F.pad(x, (0, 1, 0, 1)), c.weight, c.bias, stride=2)
        return x


class UpBlock(nn.Module):
    def __init__(self, cin, cout, layers, G, up):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(cin if j == 0 else cout, cout, G) for j in range(layers)])
        if up: self.upsamplers = nn.ModuleList([SampleConv(cout)])

    def forward(self, x):
        for r in self.resnets: x = r(x)
        if hasattr(self, 'upsamplers'):
            c = self.upsamplers[0].conv; x = F.conv2d(F.interpolate(x, scale_factor=2, mode='nearest'), c.weight, c.bias, padding=1)
        return x


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch, G = c['block_out_channels'], c['norm_num_groups']
        self.conv_in = nn.Conv2d(c['in_channels'], ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList([DownBlock(ch[0] if i == 0 else ch[i - 1], o, c['layers_per_block'], G, i < len(ch) - 1) for i, o in enumerate(ch)])
        self.mid_block = MidBlock(ch[-1], G)
        self.conv_norm_out = nn.GroupNorm(G, ch[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[-1], 2 * c['latent_channels'], 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for b in self.down_blocks: h = b(h)
        return self.conv_out(F.silu(self.conv_norm_out(self.mid_block(h))))


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        rev, G = list(reversed(c['block_out_channels'])), c['norm_num_groups']
        self.conv_in = nn.Conv2d(c['latent_channels'], rev[0], 3, padding=1)
        self.mid_block = MidBlock(rev[0], G)
        self.up_blocks = nn.ModuleList([UpBlock(rev[0] if i == 0 else rev[i - 1], o, c['layers_per_block'] + 1, G, i < len(rev) - 1) for i, o in enumerate(rev)])
        self.conv_norm_out = nn.GroupNorm(G, c['block_out_channels'][0], eps=1e-6)
        self.conv_out = nn.Conv2d(c['block_out_channels'][0], c['out_channels'], 3, padding=1)

    def forward(self, z):
        h = self.mid_block(self.conv_in(z))
        for b in self.up_blocks: h = b(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class VAE(nn.Module):
    """AutoencoderKL under diffusers' names; the encoder only when the file has it."""
    def __init__(self, config, with_encoder=True):
        super().__init__()
        self.config = config
        if with_encoder:
            self.encoder = Encoder(config)
            self.quant_conv = nn.Conv2d(2 * config['latent_channels'], 2 * config['latent_channels'], 1)
        self.decoder = Decoder(config)
        self.post_quant_conv = nn.Conv2d(config['latent_channels'], config['latent_channels'], 1)

    @property
    def downsampling(self): return 2 ** (len(self.config['block_out_channels']) - 1)

    @property
    def scaling_factor(self): return self.config.get('scaling_factor', 0.18215)

    @torch.no_grad()
    def decode(self, z, batch=50):
        """Latents [B, L, h, w] (already divided by the scale factor) -> images [B, C, h*f, w*f], unbounded floats."""
        z = torch.as_tensor(z, dtype=torch.float32)
        return torch.cat([self.decoder(self.post_quant_conv(z[s:s + batch])) for s in range(0, len(z), batch)])

    @torch.no_grad()
    def encode(self, x, batch=50):
        """Images in [-1, 1] -> (mean, logvar) of the posterior, logvar clamped to [-30, 20] (no scale factor)."""
        x = torch.as_tensor(x, dtype=torch.float32)
        m = torch.cat([self.quant_conv(self.encoder(x[s:s + batch])) for s in range(0, len(x), batch)])
        L = m.shape[1] // 2
        return m[:, :L], m[:, L:].clamp(-30, 20)


def _infer_vae_config(w):
    keys = list(w)
    blocks = sorted({int(k.split('.')[2]) for k in keys if k.startswith('encoder.down_blocks.')})
    if blocks:
        ch = [w[f'encoder.down_blocks.{i}.resnets.0.conv2.weight'].shape[0] for i in blocks]
        layers = len({k.split('.')[4] for k in keys if k.startswith('encoder.down_blocks.0.resnets.')})
    else:  # decoder only: widths from the up blocks (reversed), layers = resnets per up block - 1
        ups = sorted({int(k.split('.')[2]) for k in keys if k.startswith('decoder.up_blocks.')})
        ch = [w[f'decoder.up_blocks.{i}.resnets.0.conv2.weight'].shape[0] for i in ups][::-1]
        layers = len({k.split('.')[4] for k in keys if k.startswith('decoder.up_blocks.0.resnets.')}) - 1
    G = 32 if all(c % 32 == 0 for c in ch) else next(g for g in (16, 8, 4, 2, 1) if all(c % g == 0 for c in ch))
    return dict(in_channels=w['encoder.conv_in.weight'].shape[1] if 'encoder.conv_in.weight' in w else w['decoder.conv_out.weight'].shape[0],
                out_channels=w['decoder.conv_out.weight'].shape[0], block_out_channels=ch, layers_per_block=layers,
                norm_num_groups=G, latent_channels=w['post_quant_conv.weight'].shape[0], scaling_factor=0.18215)


def load_vae(path, config=None):
    """Our VAE safetensors (or a diffusers AutoencoderKL file / sharded index): config from the file's metadata
    (diffusers config.json keys), else inferred from the shapes as vae/checkpoint.ts does."""
    t, meta = read_safetensors(path)
    w = {_LEGACY.sub(lambda m: f"attentions.{m.group(1)}.{_LEGACY_NAMES[m.group(2)]}.", k): v
         for k, v in t.items() if re.match(r'^(encoder|decoder|quant_conv|post_quant_conv)\.', k)}
    c = _infer_vae_config(w)
    if meta.get('config'): c.update({k: v for k, v in json.loads(meta['config']).items() if k in c})
    if config: c.update(config)
    vae = VAE(c, with_encoder='encoder.conv_in.weight' in w)
    # Legacy (diffusers < 0.14) attention projections may be 1x1 conv weights [C, C, 1, 1].
    sd = vae.state_dict()
    vae.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)).reshape(sd[k].shape) for k, v in w.items()}, strict=True)
    vae.eval(); vae.file = path; vae.metadata = meta
    return vae


def to_uint8(x):
    """eval/samples.ts toUint8: clamp(floor(127.5*x + 128), 0, 255), in float64 as JavaScript computes it."""
    x = torch.as_tensor(x)
    return torch.clamp(torch.floor(x.double() * 127.5 + 128), 0, 255).to(torch.uint8)


# ------------------------------------------------------------------------------------------ judge (eval/classifier.ts)
class Judge(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config, w = config, config['widths']
        convs, self.pooled = [], []
        for s, width in enumerate(w):
            convs += [nn.Conv2d(config['channels'] if s == 0 else w[s - 1], width, 3, padding=1), nn.Conv2d(width, width, 3, padding=1)]
            self.pooled += [s > 0, False]
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList([nn.GroupNorm(8, c.out_channels, eps=1e-6) for c in convs])
        self.head = nn.Linear(w[-1], config['classes'])

    @property
    def feature_dim(self): return self.config['widths'][-1]

    @staticmethod
    def prepare(images_uint8):
        """uint8 [B, C, H, W] -> float32 in [-1, 1] as data/dataset.ts imageBatch (x/127.5 - 1, in float64 then f32)."""
        return (torch.as_tensor(np.asarray(images_uint8)).double() / 127.5 - 1).float()

    def forward_features(self, x):
        for i, c in enumerate(self.convs):
            x = F.silu(self.norms[i](c(F.avg_pool2d(x, 2) if self.pooled[i] else x)))
        return x.mean(dim=(2, 3))

    def forward(self, x): return self.head(self.forward_features(x))

    @torch.no_grad()
    def classify(self, images_uint8, batch=128):
        """(features float32 [N, F], logits [N, K], predictions int64 [N]) of uint8 images."""
        fs, ls = [], []
        for s in range(0, len(images_uint8), batch):
            f = self.forward_features(self.prepare(images_uint8[s:s + batch])); fs.append(f); ls.append(self.head(f))
        f, l = torch.cat(fs), torch.cat(ls)
        return f, l, l.argmax(dim=1)  # argmax: the first maximum, as classify() in the engine

    def features(self, images_uint8): return self.classify(images_uint8)[0]

    def logits(self, images_uint8): return self.classify(images_uint8)[1]


def load_judge(path):
    t, meta = read_safetensors(path)
    if meta.get('format') != 'dit-webgpu-classifier' or not meta.get('config'): raise ValueError(f'{path}: not a classifier of this project (no format/config metadata)')
    j = Judge(json.loads(meta['config']))
    j.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in t.items()}, strict=True)
    j.eval(); j.file = path; j.metadata = meta
    return j


# ------------------------------------------------------------------------------------------ data
def load_dataset(data='synthetic', split='test', cache_dir=CACHE_DIR):
    """The engine's own split (images uint8 [N, C, H, W], labels uint8 [N], meta dict), dumped once by
    scripts/dump_dataset.mjs (node, the build) to CACHE_DIR/<data>-<split>.npz."""
    name = data.split(':')[0]
    f = os.path.join(cache_dir, f'{name}-{split}.npz')
    if not os.path.exists(f):
        print(f'[torch_eval] writing {f} with the engine (node scripts/dump_dataset.mjs, once)', file=sys.stderr)
        subprocess.run(['node', os.path.join(ROOT, 'scripts', 'dump_dataset.mjs'), '--data', data, '--split', split, '--out', f], check=True)
    z = np.load(f)
    return z['images'], z['labels'], json.loads(bytes(z['meta']).decode())


def read_png_folder(d, channels=3):
    """A folder with one sub-folder of PNGs per class (sorted names = labels), as data/readers.ts readPngFolder:
    uint8 [N, C, H, W] (grey: the red channel), labels, folder names."""
    from PIL import Image
    classes = sorted(e.name for e in os.scandir(d) if e.is_dir())
    if not classes: raise ValueError(f'{d}: no class sub-folders')
    imgs, labels = [], []
    for k, c in enumerate(classes):
        for fn in sorted(f for f in os.listdir(os.path.join(d, c)) if f.lower().endswith('.png')):
            a = np.asarray(Image.open(os.path.join(d, c, fn)).convert('RGBA'))
            if imgs and a.shape != imgs[0].shape: raise ValueError(f'{os.path.join(d, c, fn)}: {a.shape[1]}x{a.shape[0]}, the others {imgs[0].shape[1]}x{imgs[0].shape[0]}')
            imgs.append(a); labels.append(k)
    if not imgs: raise ValueError(f'{d}: no PNG files')
    x = np.stack(imgs)[..., :channels].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), np.array(labels, np.uint8), classes


# ------------------------------------------------------------------------------------------ Fréchet (eval/frechet.ts)
def gaussian(features):
    """(mean, covariance) in float64, covariance with n - 1 (numpy.cov)."""
    x = np.asarray(features, dtype=np.float64)
    if len(x) < 2: raise ValueError(f'need at least 2 vectors, got {len(x)}')
    mu = x.mean(0); d = x - mu
    return mu, d.T @ d / (len(x) - 1)


def _sqrt_psd(a):
    lam, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.maximum(lam, 0))) @ v.T


def frechet_distance(g1, g2):
    """max(0, |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2)), as the engine (eigh in place of Jacobi)."""
    (m1, c1), (m2, c2) = g1, g2
    s1 = _sqrt_psd(c1); m = s1 @ c2 @ s1; m = 0.5 * (m + m.T)
    tr_sqrt = np.sqrt(np.maximum(np.linalg.eigvalsh(m), 0)).sum()
    return float(max(0.0, ((m1 - m2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * tr_sqrt))


# ------------------------------------------------------------------------------------------ scoring (eval/quality.ts)
def default_judge_file(data, train_fingerprint=None):
    """weights/classifier-<data>.safetensors, or the engine's cache .cache/classifier/<fingerprint>.safetensors,
    whichever records the train split's fingerprint (as eval/judge.ts judgeFor)."""
    cands = [os.path.join(ROOT, 'weights', f'classifier-{data}.safetensors')]
    if train_fingerprint: cands.append(os.path.join(ROOT, '.cache', 'classifier', f'{train_fingerprint}.safetensors'))
    for f in cands:
        if os.path.exists(f) and (train_fingerprint is None or read_safetensors(f)[1].get('fingerprint') == train_fingerprint): return f
    raise FileNotFoundError(f'no judge for {data} trained on this train split (fingerprint {train_fingerprint}): run `dit eval --data {data}` once to train one')


class Scorer:
    """Scores uint8 samples as `dit eval --json` does. The real test split's features are computed once per judge
    file and cached (CACHE_DIR/<data>-test-features-<judge digest>.npz). real_images: the first N test images only
    (`dit eval --real-images N`)."""

    def __init__(self, data='synthetic', judge=None, real_images=None, cache_dir=CACHE_DIR, log=True):
        self.data = data
        self.test_images, self.test_labels, self.meta = load_dataset(data, 'test', cache_dir)
        self.classes = self.meta['classes']
        jf = judge if isinstance(judge, str) else None
        if jf is None and not isinstance(judge, Judge): jf = default_judge_file(data.split(':')[0], self.meta.get('train_fingerprint'))
        self.judge = judge if isinstance(judge, Judge) else load_judge(jf)
        if real_images: self.test_images, self.test_labels = self.test_images[:real_images], self.test_labels[:real_images]
        n = len(self.test_labels)
        cf = os.path.join(cache_dir, f"{data.split(':')[0]}-test-features-{_file_digest(self.judge.file)}-{self.meta['fingerprint']}-{n}.npz")
        if os.path.exists(cf):
            z = np.load(cf); feats, preds = z['features'], z['predictions']
        else:
            t0 = time.time()
            f, _, p = self.judge.classify(self.test_images)
            feats, preds = f.numpy(), p.numpy()
            os.makedirs(cache_dir, exist_ok=True); np.savez(cf + '.tmp.npz', features=feats, predictions=preds); os.replace(cf + '.tmp.npz', cf)
            if log: print(f'[torch_eval] real features of {n} {data} test images in {time.time() - t0:.1f} s -> {cf}', file=sys.stderr)
        self.test_features, self.test_predictions = feats, preds
        self.test_accuracy = float((preds == self.test_labels).mean())
        half = n // 2
        self.reference = gaussian(feats[:half]); self.reference_count = half
        self.pool_features, self.pool_labels = feats[half:], self.test_labels[half:]

    def floor_set(self, labels):
        """Per class, the first pool images (second half of the test split), as many as samples of that class."""
        K = len(self.classes); want = np.bincount(np.asarray(labels, np.int64), minlength=K); have = np.zeros(K, np.int64); floor = []
        for i, l in enumerate(self.pool_labels):
            if len(floor) >= len(labels): break
            if have[l] < want[l]: have[l] += 1; floor.append(i)
        if len(floor) < len(labels): raise ValueError(f"the test split's second half has too few images per class for {len(labels)} samples (at most {len(floor)})")
        return np.array(floor, np.int64)

    def score(self, images_uint8, labels):
        """uint8 images [N, C, H, W] (numpy or torch) with their requested classes -> the report of `dit eval --json`."""
        images = np.asarray(images_uint8.numpy() if torch.is_tensor(images_uint8) else images_uint8)
        labels = np.asarray(labels.numpy() if torch.is_tensor(labels) else labels).astype(np.int64)
        if images.dtype != np.uint8: raise TypeError(f'images must be uint8 (to_uint8 of decoded images), got {images.dtype}')
        if images.shape[1:] != self.test_images.shape[1:]: raise ValueError(f'samples are {images.shape[1:]}, {self.data} images {self.test_images.shape[1:]}')
        if len(labels) < 2: raise ValueError(f'need at least 2 samples to score, got {len(labels)}')
        K = len(self.classes)
        floor = self.floor_set(labels)
        f, _, pred = self.judge.classify(images)
        pred = pred.numpy()
        want = np.bincount(labels, minlength=K); right = np.bincount(labels[pred == labels], minlength=K)
        return dict(
            accuracy=float((pred == labels).mean()),
            per_class={c: float(right[k] / want[k]) for k, c in enumerate(self.classes) if want[k]},
            frechet=frechet_distance(gaussian(f.numpy()), self.reference),
            frechet_real=frechet_distance(gaussian(self.pool_features[floor]), self.reference),
            samples=int(len(labels)), classifier_test_accuracy=self.test_accuracy, reference_images=int(self.reference_count))

    def reconstruction_ceiling(self, vae, per_class=50):
        """`dit eval --reconstructions`: the scores of the VAE's reconstructions (decode of the posterior mean) of
        exactly the real test images that make up the floor at per_class samples per class."""
        K = len(self.classes)
        idx = self.reference_count + self.floor_set(np.repeat(np.arange(K), per_class))
        mean, _ = vae.encode(Judge.prepare(self.test_images[idx]))
        return self.score(to_uint8(vae.decode(mean)), self.test_labels[idx])

    def score_latents(self, latents, labels, vae, scale):
        """Decodes latents (as sampled, i.e. times the scale factor) like sampleImages: vae.decode(z * (1/scale)) -> to_uint8 -> score."""
        z = torch.as_tensor(np.asarray(latents) if not torch.is_tensor(latents) else latents, dtype=torch.float32)
        x = vae.decode(z * torch.tensor(1 / scale, dtype=torch.float32))
        return self.score(to_uint8(x), labels)


# ------------------------------------------------------------------------------------------ CLI
def _load_array(path, key=None):
    if path.endswith('.safetensors'):
        t, meta = read_safetensors(path)
        return t[key] if key else t.get('latents', next(iter(t.values()))), meta
    return np.load(path), {}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--latents', help='sampled latents .npy [N, L, h, w] (as the DiT outputs them; divided by --scale before decoding), or a .safetensors with `latents`')
    p.add_argument('--labels', help='.npy of the requested class per latent')
    p.add_argument('--vae', default=os.path.join(ROOT, 'weights', 'vae-synthetic.safetensors'))
    p.add_argument('--scale', type=float, help="the latent scale factor (the DiT checkpoint's scale_factor metadata; default: the latents file's)")
    p.add_argument('--pngs', help='score a folder of PNGs, one sub-folder per class (dit sample --out-dir)')
    p.add_argument('--reconstructions', type=int, metavar='PER_CLASS', help="score the --vae's reconstructions of the floor's real images (dit eval --reconstructions --per-class N)")
    p.add_argument('--data', default='synthetic', help='synthetic or fashion-mnist')
    p.add_argument('--judge', help='the classifier (default: weights/classifier-<data>.safetensors)')
    p.add_argument('--real-images', type=int, help='use only the first N real test images')
    p.add_argument('--threads', type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if sum(map(bool, (a.latents, a.pngs, a.reconstructions))) != 1: p.error('give --latents (with --labels), --pngs or --reconstructions')
    t0 = time.time()
    scorer = Scorer(a.data, a.judge, a.real_images)
    t1 = time.time()
    if a.pngs:
        images, labels, folders = read_png_folder(a.pngs, scorer.test_images.shape[1])
        if len(folders) != len(scorer.classes): p.error(f'{a.pngs} has {len(folders)} class folders, the dataset {len(scorer.classes)} classes')
        r = scorer.score(images, labels)
    elif a.reconstructions:
        r = scorer.reconstruction_ceiling(load_vae(a.vae), a.reconstructions)
    else:
        if not a.labels: p.error('--latents needs --labels')
        z, meta = _load_array(a.latents)
        if a.scale is None and 'scale_factor' not in meta: p.error(f'{a.latents} records no scale factor: give --scale (the DiT checkpoint\'s scale_factor)')
        scale = a.scale if a.scale is not None else float(meta['scale_factor'])
        r = scorer.score_latents(z, np.load(a.labels), load_vae(a.vae), scale)
    print(json.dumps(r, indent=1))
    print(f'[torch_eval] {r["samples"]} samples scored in {time.time() - t1:.2f} s (set-up {t1 - t0:.2f} s, {a.threads} thread(s))', file=sys.stderr)


if __name__ == '__main__':
    main()
