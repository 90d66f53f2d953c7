"""The yardstick of `npm run bench:train`: the same models, loss, optimizer and batches in PyTorch.

The pose task's CNN (the default `{family: cnn, widths: [16, 32, 64, 96]}`: a 3x3 stride-2 stem,
then per width a 3x3 stride-2 depthwise and a 1x1 pointwise convolution, each followed by batch
norm and ReLU6, flattened into 34 sigmoid outputs) and the bench's ViT (patch 8, dim 64, depth 4,
heads 4, MLP ratio 2: a strided-conv patch embedding, a learnt position embedding, pre-norm blocks
of multi-head self-attention and a GELU MLP, a final layer norm, mean-pooled tokens, 34 sigmoid
outputs), on 64 x 64 x 3 images, trained with Adam on the same masked squared error as the
project's keypoint head. A step is zero_grad, forward, loss, backward and the Adam update,
synchronised by reading the loss back, as the project's bench does. Each figure is the median
of --steps timed steps after --warmup untimed ones, in eager mode (the CNN in channels-last
memory) and, with --compile, after torch.compile.

Prints one JSON object a line: {"model", "mode", "batch", "imagesPerSecond", "stepMs"}, then
one with "device" and "torch". PyTorch is a yardstick here, never a dependency of the project.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Cnn(nn.Module):
    def __init__(self, widths=(16, 32, 64, 96), side=64, outputs=34):
        super().__init__()

        def bn_relu6(c):
            return [nn.BatchNorm2d(c, eps=1e-3, momentum=0.1), nn.ReLU6()]

        layers = [nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False), *bn_relu6(widths[0])]
        prev = widths[0]
        for w in widths[1:]:
            layers += [nn.Conv2d(prev, prev, 3, stride=2, padding=1, groups=prev, bias=False), *bn_relu6(prev)]
            layers += [nn.Conv2d(prev, w, 1, bias=False), *bn_relu6(w)]
            prev = w
        self.features = nn.Sequential(*layers)
        cells = side // 2 ** len(widths)
        self.head = nn.Linear(prev * cells * cells, outputs)

    def forward(self, x):
        return torch.sigmoid(self.head(torch.flatten(self.features(x), 1)))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.fc1 = nn.Linear(dim, mlp)
        self.fc2 = nn.Linear(mlp, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(a)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class Vit(nn.Module):
    def __init__(self, patch=8, dim=64, depth=4, heads=4, mlp_ratio=2, side=64, outputs=34):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)
        tokens = (side // patch) ** 2
        self.position = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, dim * mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        self.head = nn.Linear(dim, outputs)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2) + self.position
        return torch.sigmoid(self.head(self.norm(self.blocks(x)).mean(1)))


def masked_squared_error(pred, target, mask):
    return (mask * (pred - target) ** 2).sum() / mask.sum().clamp(min=1)


def time_model(name, batch, mode, steps, warmup, device):
    torch.manual_seed(1)
    model = (Cnn() if name == 'cnn' else Vit()).to(device)
    x = torch.rand(batch, 3, 64, 64, device=device)
    if name == 'cnn':
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    target = torch.rand(batch, 34, device=device)
    mask = (torch.rand(batch, 34, device=device) > 0.2).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    forward = torch.compile(model) if mode == 'compile' else model

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = masked_squared_error(forward(x), target, mask)
        loss.backward()
        optimizer.step()
        return loss.item()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1000
    return {'model': name, 'mode': mode, 'batch': batch, 'imagesPerSecond': batch / ms * 1000, 'stepMs': ms}


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--models', default='cnn,vit')
    p.add_argument('--batches', default='64,256,1024')
    p.add_argument('--steps', type=int, default=9)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--compile', action='store_true')
    a = p.parse_args()
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.backends.cudnn.benchmark = True
    for name in a.models.split(','):
        for batch in map(int, a.batches.split(',')):
            for mode in ['eager', 'compile'] if a.compile else ['eager']:
                print(json.dumps(time_model(name, batch, mode, a.steps, a.warmup + (3 if mode == 'compile' else 0), device)), flush=True)
    print(json.dumps({'device': torch.cuda.get_device_name() if device == 'cuda' else 'cpu', 'torch': torch.__version__}), flush=True)


if __name__ == '__main__':
    main()
