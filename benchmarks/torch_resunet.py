"""The CPU recipe's ResNet U-Net (`jaxgen.diffusion.ResUNet`) in PyTorch eager, layer for layer
(NCHW), as `jaxgen bench ddpm`'s eager baseline for its training step: the same blocks, widths,
GroupNorm groups, attention and upsampling, so the same parameter count (checked by the tests).

PyTorch is an optional extra (`pip install "torch==2.13.0+cpu"`), never a dependency.
"""

from __future__ import annotations

import math

from jaxgen.diffusion.resunet import num_groups


def res_unet(base: int = 32, mults=(1, 2, 2), depth: int = 1, attention=(7,),
             upsample: str = "conv", scale_shift: bool = False, channels: int = 1,
             size: int = 28):
    """`net(x_t, t)`: x (B, channels, size, size), t (B,) integer timesteps -> (B, channels,
    size, size); the architecture of `ResUNet(base, mults, depth, attention, upsample,
    scale_shift=scale_shift)`."""
    import torch
    from torch import nn

    def norm(c):
        return nn.GroupNorm(num_groups(c), c)

    class ResBlock(nn.Module):
        def __init__(self, c_in, c_out, dim):
            super().__init__()
            self.norm1, self.conv1 = norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
            self.time = nn.Linear(dim, 2 * c_out if scale_shift else c_out)
            self.norm2, self.conv2 = norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
            self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

        def forward(self, x, emb):
            h = self.conv1(nn.functional.silu(self.norm1(x)))
            e = self.time(nn.functional.silu(emb))[:, :, None, None]
            if scale_shift:  # AdaGN: the embedding scales and shifts the second norm
                s, b = e.chunk(2, dim=1)
                h = self.norm2(h) * (1 + s) + b
            else:
                h = self.norm2(h + e)
            h = self.conv2(nn.functional.silu(h))
            return self.skip(x) + h

    class Attention(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.norm, self.qkv, self.proj = norm(c), nn.Linear(c, 3 * c), nn.Linear(c, c)

        def forward(self, x):
            b, c, h, w = x.shape
            q, k, v = self.qkv(self.norm(x).flatten(2).transpose(1, 2)).chunk(3, dim=-1)
            weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1)
            return x + self.proj(weights @ v).transpose(1, 2).reshape(b, c, h, w)

    class Stage(nn.Module):
        """A ResBlock, then attention when this resolution has it."""

        def __init__(self, c_in, c_out, dim, side):
            super().__init__()
            self.block = ResBlock(c_in, c_out, dim)
            self.attn = Attention(c_out) if side in attention else nn.Identity()

        def forward(self, x, emb):
            return self.attn(self.block(x, emb))

    class ResUNet(nn.Module):
        def __init__(self):
            super().__init__()
            dim = 4 * base
            self.time = nn.Sequential(nn.Linear(base, dim), nn.SiLU(), nn.Linear(dim, dim))
            self.conv_in = nn.Conv2d(channels, base, 3, padding=1)
            self.down = nn.ModuleList()
            skip_channels, c, side = [base], base, size
            for i, m in enumerate(mults):
                for _ in range(depth):
                    self.down.append(Stage(c, base * m, dim, side))
                    c = base * m
                    skip_channels.append(c)
                if i < len(mults) - 1:
                    self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                    side //= 2
                    skip_channels.append(c)
            self.mid1, self.mid_attn, self.mid2 = (ResBlock(c, c, dim), Attention(c),
                                                   ResBlock(c, c, dim))
            self.up = nn.ModuleList()
            for i, m in reversed(list(enumerate(mults))):
                for _ in range(depth + 1):
                    self.up.append(Stage(c + skip_channels.pop(), base * m, dim, side))
                    c = base * m
                if i > 0:
                    self.up.append(nn.Sequential(
                        nn.Upsample(scale_factor=2, mode="nearest"),
                        *([nn.Conv2d(c, c, 3, padding=1)] if upsample == "conv" else [])))
                    side *= 2
            self.norm_out, self.conv_out = norm(c), nn.Conv2d(c, channels, 3, padding=1)

        def forward(self, x, t):
            i = torch.arange(base)  # the book's encoding: sin at even i, cos at odd i
            angle = t[:, None].float() / torch.exp(i / base * math.log(10000.0))
            emb = self.time(torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle)))
            h = self.conv_in(x)
            skips = [h]
            for layer in self.down:
                h = layer(h, emb) if isinstance(layer, Stage) else layer(h)
                skips.append(h)
            h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
            for layer in self.up:
                if isinstance(layer, Stage):
                    h = layer(torch.cat([h, skips.pop()], 1), emb)
                else:
                    h = layer(h)
            return self.conv_out(nn.functional.silu(self.norm_out(h)))

    return ResUNet()
