"""A noise-conditional classifier p(y | x_t, t) for classifier guidance (beyond the book).

It is trained on images noised by the forward process at uniformly drawn t, so that its
gradient grad_x log p(y | x_t, t) is meaningful all along the reverse chain.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxgen.diffusion.ddpm import q_sample
from jaxgen.diffusion.groupnorm import GroupNorm
from jaxgen.diffusion.schedule import Schedule
from jaxgen.diffusion.unet import sinusoidal_embedding


class NoisyClassifier(nn.Module):
    """logits(x_t (B, H, W, C), t (B,)) -> (B, num_classes); per stage: conv3x3 + time MLP,
    GroupNorm, ReLU, conv3x3, GroupNorm, ReLU, 2x2 max-pool; then a Dense on the flattened map.
    No batch statistics, so examples are independent (as per-example gradients need).
    Not a global mean before the Dense: after GroupNorm + ReLU each channel's spatial mean is
    almost the same for every input, and with that head the classifier stayed at chance on
    noised digits (even at t = 10) while learning clean ones at once."""

    widths: tuple[int, ...] = (32, 64)
    time_dim: int = 100
    num_classes: int = 10

    @nn.compact
    def __call__(self, x, t):
        emb = sinusoidal_embedding(t, self.time_dim)
        for w in self.widths:
            x = nn.Conv(w, (3, 3), padding=1)(x)
            x = x + nn.Dense(w)(nn.relu(nn.Dense(w)(emb)))[:, None, None, :]
            x = nn.relu(GroupNorm(num_groups=min(8, w))(x))
            x = nn.relu(GroupNorm(num_groups=min(8, w))(nn.Conv(w, (3, 3), padding=1)(x)))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))


def make_loss(model: NoisyClassifier, schedule: Schedule,
              data_range: tuple[float, float] = (0.0, 1.0)):
    """`loss(params, key, (x0, y), model_state) -> (mean cross-entropy, {'accuracy'},
    model_state)` on x_t ~ q(x_t | x0), t ~ U{1..T} per example. x0 in [0, 1] is first mapped
    to `data_range`, the pixel range the diffusion model it guides was trained on."""
    lo, hi = data_range

    def loss(params, key, batch, model_state=None):
        x0, y = batch
        kt, kn = jax.random.split(key)
        t = jax.random.randint(kt, (x0.shape[0],), 1, schedule.T + 1)
        x0 = x0 * (hi - lo) + lo
        x_t = q_sample(x0, t, jax.random.normal(kn, x0.shape, x0.dtype), schedule)
        logits = model.apply({"params": params}, x_t, t)
        acc = jnp.mean(jnp.argmax(logits, -1) == y)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y)), {
            "accuracy": acc}, model_state

    return loss


def accuracy_by_t(logits_fn, x0: jax.Array, y: jax.Array, schedule: Schedule, bands: int = 5,
                  data_range: tuple[float, float] = (0.0, 1.0), *, key: jax.Array) -> jax.Array:
    """Accuracy of `logits_fn(x_t, t)` on x0 (N, H, W, C) in [0, 1] with labels y (N,), noised
    at t drawn uniformly inside each of `bands` equal bands of 1..T: (bands,), band b covering
    t in (b T / bands, (b + 1) T / bands]. Where guidance can steer depends on the bands where
    this is above chance (0.1)."""
    if x0.ndim != 4 or y.shape != x0.shape[:1]:
        raise ValueError(f"x0 must be (N, H, W, C) and y (N,), got {x0.shape} and {y.shape}")
    if bands < 1 or schedule.T % bands:
        raise ValueError(f"bands must be >= 1 and divide T = {schedule.T}, got {bands}")
    lo, hi = data_range
    x0 = jnp.asarray(x0) * (hi - lo) + lo
    width = schedule.T // bands

    def band(b, k):
        kt, kn = jax.random.split(k)
        t = b * width + jax.random.randint(kt, (x0.shape[0],), 1, width + 1)
        x_t = q_sample(x0, t, jax.random.normal(kn, x0.shape, x0.dtype), schedule)
        return jnp.mean(jnp.argmax(logits_fn(x_t, t), -1) == y)

    return jnp.stack([band(b, jax.random.fold_in(key, b)) for b in range(bands)])
