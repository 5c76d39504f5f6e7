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


def make_loss(model: nn.Module):
    """The pure training loss `loss(params, key, (images, labels), model_state) -> (loss,
    {'accuracy'}, model_state)` (`jaxgen.train`'s signature; no model state here)."""

    def loss(params, key, batch, model_state=None):
        del key  # deterministic models
        images, labels = batch
        logits = model.apply(params, images)
        acc = jnp.mean(jnp.argmax(logits, -1) == labels)
        return jnp.mean(cross_entropy(logits, labels)), {"accuracy": acc}, model_state

    return loss
