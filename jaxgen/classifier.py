"""Neural-network classifiers for MNIST (book chapter 6 and the basics): an MLP whose
activation and initialisation are configurable, and a small CNN, with a pure loss."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

ACTIVATIONS: dict[str, Callable] = {"relu": nn.relu, "sigmoid": nn.sigmoid}
INITS = {"he": nn.initializers.he_normal(), "xavier": nn.initializers.xavier_normal()}


class MLP(nn.Module):
    """784 -> hidden... -> 10 logits."""

    hidden: tuple[int, ...] = (100, 100)
    activation: str = "relu"
    initializer: str = "he"

    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        for h in self.hidden:
            x = ACTIVATIONS[self.activation](nn.Dense(h, kernel_init=INITS[self.initializer])(x))
        return nn.Dense(10, kernel_init=INITS[self.initializer])(x)


class CNN(nn.Module):
    """Two conv-conv-pool stages (32, 64 channels), a 128-unit feature layer, 10 logits.

    `features` (the penultimate layer) is what the evaluator's MNIST-FID compares.
    """

    @nn.compact
    def __call__(self, x, *, features: bool = False):
        for ch in (32, 64):
            x = nn.relu(nn.Conv(ch, (3, 3))(x))
            x = nn.relu(nn.Conv(ch, (3, 3))(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        h = nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1)))
        return h if features else nn.Dense(10)(h)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """-log softmax(logits)[label] per example, shape (B,)."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def random_shift(key: jax.Array, images: jax.Array, max_shift: int) -> jax.Array:
    """Each image (B, H, W, C) translated by its own random integer offset in
    [-max_shift, max_shift] pixels on each axis, vacated pixels zero (the MNIST background)."""
    if max_shift == 0:
        return images
    b, h, w, _ = images.shape
    padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
    offsets = jax.random.randint(key, (b, 2), 0, 2 * max_shift + 1)

    def crop(img, o):
        return jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1]))

    return jax.vmap(crop)(padded, offsets)


def make_loss(model: nn.Module, *, max_shift: int = 0):
    """The pure training loss `loss(params, key, (images, labels), model_state) -> (loss,
    {'accuracy'}, model_state)` (`jaxgen.train`'s signature; no model state here).

    With `max_shift > 0` each training image is first translated by a random offset of up to
    that many pixels (`random_shift`, drawn from `key`): the augmentation of the evaluator CNN.
    """
    if not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"max_shift must be an integer >= 0, got {max_shift!r}")

    def loss(params, key, batch, model_state=None):
        images, labels = batch
        images = random_shift(key, images, max_shift)
        logits = model.apply(params, images)
        acc = jnp.mean(jnp.argmax(logits, -1) == labels)
        return jnp.mean(cross_entropy(logits, labels)), {"accuracy": acc}, model_state

    return loss
