"""The book's U-Net for epsilon prediction (chapter 9), as a Flax linen module.

    t -> sinusoidal embedding (D=100); each ConvBlock: x + MLP(emb) -> (conv3x3-norm-ReLU) x2
    down: 28x28 1 -> 64, pool, 14x14 64 -> 128, pool, 7x7 128 -> 256 (bottleneck)
    up:   bilinear x2, concat skip, 14x14 384 -> 128; x2, concat, 28x28 192 -> 64; 1x1 conv

With the defaults it has the book's 2,167,784 parameters (BatchNorm running statistics
excluded). With `num_classes` set it is the conditional U-Net of chapter 10: a label embedding
is added to the time embedding, and label `num_classes` is the null label (unconditional use,
classifier-free guidance): `null_label='skip'` is the book's (nn.Embedding(10, 100); the null
label adds no embedding), `'learned'` gives the null label an embedding row of its own. Widths,
depth and the normalisation ('batch' as in the book, or 'group', which has no train/eval
statistics) are configurable. Images are NHWC.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.diffusion.groupnorm import GroupNorm


def sinusoidal_embedding(t: jax.Array, dim: int) -> jax.Array:
    """The book's positional encoding of timesteps t (B,) -> (B, dim):
    v_i = sin(t / 10000^(i/dim)) for even i, cos(t / 10000^(i/dim)) for odd i."""
    i = jnp.arange(dim)
    angle = jnp.asarray(t, jnp.float32)[:, None] / jnp.exp(i / dim * math.log(10000.0))
    return jnp.where(i % 2 == 0, jnp.sin(angle), jnp.cos(angle))


INITS = ("flax", "torch")  # Flax's defaults, or PyTorch's (the book's model)


def initializers(init: str, fan_in: int) -> dict:
    """Keyword arguments of a Dense/Conv layer with `fan_in` inputs (per output unit): {} for
    Flax's defaults (lecun_normal kernels, zero biases) or PyTorch's defaults for Linear/Conv2d,
    kernel and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5))."""
    if init == "flax":
        return {}
    bound = 1.0 / math.sqrt(fan_in)
    return {"kernel_init": nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
            "bias_init": lambda key, shape, dtype=jnp.float32: jax.random.uniform(
                key, shape, dtype, -bound, bound)}


class ConvBlock(nn.Module):
    """y = (conv3x3 -> norm -> ReLU) x 2 applied to x + MLP(time embedding)."""

    features: int
    norm: str = "batch"
    param_init: str = "flax"  # one of INITS

    @nn.compact
    def __call__(self, x, emb, train: bool):
        c_in = x.shape[-1]
        outer = nn.Dense(c_in, **initializers(self.param_init, c_in))  # named first: Dense_0
        inner = nn.Dense(c_in, **initializers(self.param_init, emb.shape[-1]))
        v = outer(nn.relu(inner(emb)))
        x = x + v[:, None, None, :]
        for _ in range(2):
            x = nn.Conv(self.features, (3, 3), padding=1,
                        **initializers(self.param_init, 9 * x.shape[-1]))(x)
            if self.norm == "batch":
                x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
            else:
                x = GroupNorm(num_groups=min(8, self.features))(x)
            x = nn.relu(x)
        return x


class UNet(nn.Module):
    """eps_theta(x_t, t): x (B, H, W, C) in, the same shape out; t (B,) integer timesteps."""

    widths: tuple[int, ...] = (64, 128, 256)
    time_dim: int = 100
    norm: str = "batch"
    num_classes: int | None = None  # None: unconditional; else labels 0..num_classes (= null)
    null_label: str = "learned"  # 'learned' (an embedding row) or 'skip' (the book: none added)
    param_init: str = "flax"  # initialisation: 'flax' defaults or 'torch' (the book's model)

    @nn.compact
    def __call__(self, x, t, y=None, train: bool = False):
        """y (B,) integer labels in 0..num_classes (num_classes = null); None = the null label."""
        if self.norm not in ("batch", "group"):
            raise ValueError(f"norm must be 'batch' or 'group', got {self.norm!r}")
        if self.param_init not in INITS:
            raise ValueError(f"param_init must be one of {INITS}, got {self.param_init!r}")
        if self.null_label not in ("learned", "skip"):
            raise ValueError(f"null_label must be 'learned' or 'skip', got {self.null_label!r}")
        channels = x.shape[-1]
        emb = sinusoidal_embedding(t, self.time_dim)
        if self.num_classes is not None:
            if y is None:
                y = jnp.full((x.shape[0],), self.num_classes)
            # N(0, 1) rows as the book's nn.Embedding (Flax's default is 10x smaller at D=100,
            # and a label signal that weak is learnt slowly)
            init = nn.initializers.normal(1.0)
            if self.null_label == "learned":
                emb = emb + nn.Embed(self.num_classes + 1, self.time_dim, embedding_init=init)(y)
            else:  # the book: labels 0..9 embedded, the null label adds nothing
                e = nn.Embed(self.num_classes, self.time_dim, embedding_init=init)(
                    jnp.minimum(y, self.num_classes - 1))
                emb = emb + jnp.where((y == self.num_classes)[:, None], 0.0, e)
        elif y is not None:
            raise ValueError("labels y were given to an unconditional UNet (num_classes=None)")
        skips = []
        for w in self.widths[:-1]:
            x = ConvBlock(w, self.norm, self.param_init)(x, emb, train)
            skips.append(x)
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = ConvBlock(self.widths[-1], self.norm, self.param_init)(x, emb, train)
        for w, skip in zip(reversed(self.widths[:-1]), reversed(skips), strict=True):
            b, h, wd, c = x.shape
            x = jax.image.resize(x, (b, 2 * h, 2 * wd, c), "bilinear")
            x = ConvBlock(w, self.norm, self.param_init)(jnp.concatenate([x, skip], axis=-1), emb,
                                                   train)
        return nn.Conv(channels, (1, 1), **initializers(self.param_init, x.shape[-1]))(x)
