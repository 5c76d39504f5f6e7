"""The book's chapter 9 DDPM training loop in PyTorch eager, written from the book's description
(`../shared/reference.md`), as the independent reference for `jaxgen run ddpm`'s epoch losses:
the same 60,000 digits in [0, 1], T = 1000, betas linspace(1e-4, 0.02), t ~ U{1..T}, eps-MSE,
Adam 1e-3, batch 128, the BatchNorm U-Net 1 -> 64 -> 128 -> 256 with the sinusoidal time
embedding (D = 100) added, through a small MLP, to every conv block's input.

    pip install "torch==2.13.0+cpu"
    python -m jaxgen.benchmarks.torch_book_ddpm --epochs 1

Prints each epoch's average loss and seconds; PyTorch is an optional extra, never a dependency.
"""

from __future__ import annotations

import argparse
import math
import time


def book_unet():
    """The book's U-Net in PyTorch eager (NCHW): `net(x_t, v)` with v (B, 100) the time
    embedding; also the eager baseline of `jaxgen bench ddpm`."""
    import torch
    from torch import nn

    class ConvBlock(nn.Module):
        def __init__(self, c_in, c_out, t_dim=100):
            super().__init__()
            self.convs = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1),
                                       nn.BatchNorm2d(c_out), nn.ReLU(),
                                       nn.Conv2d(c_out, c_out, 3, padding=1),
                                       nn.BatchNorm2d(c_out), nn.ReLU())
            self.mlp = nn.Sequential(nn.Linear(t_dim, c_in), nn.ReLU(), nn.Linear(c_in, c_in))

        def forward(self, x, v):
            return self.convs(x + self.mlp(v)[:, :, None, None])

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.down1, self.down2 = ConvBlock(1, 64), ConvBlock(64, 128)
            self.bot1 = ConvBlock(128, 256)
            self.up2, self.up1 = ConvBlock(128 + 256, 128), ConvBlock(128 + 64, 64)
            self.out = nn.Conv2d(64, 1, 1)
            self.pool = nn.MaxPool2d(2)
            self.upsample = nn.Upsample(scale_factor=2, mode="bilinear")

        def forward(self, x, v):
            x1 = self.down1(x, v)
            x2 = self.down2(self.pool(x1), v)
            x = self.upsample(self.bot1(self.pool(x2), v))
            x = self.upsample(self.up2(torch.cat([x, x2], 1), v))
            return self.out(self.up1(torch.cat([x, x1], 1), v))

    return UNet()


def main(argv=None) -> None:
    import numpy as np
    import torch
    from torch.nn import functional as F

    from jaxgen.data import load_mnist

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)

    def pos_encoding(t, dim):  # the book's: sin at even i, cos at odd i, t / 10000^(i / dim)
        i = torch.arange(dim)
        angle = t[:, None].float() / torch.exp(i / dim * math.log(10000.0))
        return torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle))

    T = 1000
    betas = torch.linspace(1e-4, 0.02, T)
    alpha_bars = torch.cumprod(1 - betas, 0)
    images = torch.from_numpy(np.asarray(load_mnist("train").images)).permute(0, 3, 1, 2)
    net = book_unet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    print(f"{sum(q.numel() for q in net.parameters()):,} parameters, {len(images):,} digits")
    for epoch in range(1, args.epochs + 1):
        order, total, count, t0 = torch.randperm(len(images)), 0.0, 0, time.perf_counter()
        for start in range(0, len(images), 128):
            x = images[order[start:start + 128]]
            t = torch.randint(1, T + 1, (len(x),))
            noise = torch.randn_like(x)
            ab = alpha_bars[t - 1][:, None, None, None]
            loss = F.mse_loss(net(ab.sqrt() * x + (1 - ab).sqrt() * noise,
                                  pos_encoding(t, 100)), noise)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + loss.item(), count + 1
        print(f"epoch {epoch}: average loss {total / count:.4f} over {count} steps, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
