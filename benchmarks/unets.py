"""The U-Net family's size: parameters and forward GFLOP per 28x28 image (XLA's count, the same
on every machine) for the book's U-Net and the ResNet U-Net's configurations -- width (`base`),
depth, attention resolutions, upsampling -- beside the CPU recipe's. Nothing is trained or run:
each network is only lowered."""

from __future__ import annotations

from jaxgen.benchmarks.common import machine
from jaxgen.diffusion import ResUNet, UNet, cost

RECIPE = dict(base=32, mults=(1, 2, 2), depth=1, attention=(7,), upsample="nearest")

CONFIGS = [
    ("the book's U-Net 64-128-256 (BatchNorm), ch. 9", UNet(widths=(64, 128, 256), norm="batch")),
    ("the book's U-Net at half width 32-64-128 (GroupNorm)", UNet(widths=(32, 64, 128))),
    ("ResUNet, the CPU recipe: 32x(1,2,2), attention 7x7, resize-only up", ResUNet(**RECIPE)),
    ("  same, conditional (label embedding)", ResUNet(**RECIPE, num_classes=10)),
    ("  up = resize + 3x3 conv", ResUNet(**{**RECIPE, "upsample": "conv"})),
    ("  attention at 14x14 and 7x7", ResUNet(**{**RECIPE, "attention": (14, 7)})),
    ("  depth 2", ResUNet(**{**RECIPE, "depth": 2})),
    ("  width x0.5 (base 16)", ResUNet(**{**RECIPE, "base": 16})),
    ("  width x2 (base 64)", ResUNet(**{**RECIPE, "base": 64})),
    ("  mults (1,2,4)", ResUNet(**{**RECIPE, "mults": (1, 2, 4)})),
]


def run(*, quick: bool) -> dict:
    rows = []
    for label, net in CONFIGS[:3] if quick else CONFIGS:
        params, gflop = cost.size(net)
        rows.append(dict(network=label, params=params, forward_gflop_per_image=gflop,
                         train_step_gflop_per_image=3 * gflop))
    return {"machine": machine(), "rows": rows,
            "notes": ["forward_gflop_per_image: XLA's cost analysis of one forward pass on a "
                      "28x28x1 image (lowered, not run); a training step is about 3x (forward, "
                      "input and kernel gradients)"]}
