"""The DDPM training objective for a linen epsilon-network, in the form `jaxgen.train` takes."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.diffusion import prediction as predictions
from jaxgen.diffusion.schedule import Schedule


def drop_labels(y: jax.Array, p: float, null: int, per_example: bool = True, *,
                key: jax.Array) -> jax.Array:
    """Replace labels y (B,) by the null label with probability p: each example independently
    (per_example=True, the usual classifier-free guidance training) or the whole batch at once
    (per_example=False, the book's chapter 10 code)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p_uncond must be in [0, 1], got {p}")
    drop = jax.random.bernoulli(key, p, y.shape if per_example else ())
    return jnp.where(drop, null, y)


def make_loss(net: nn.Module, schedule: Schedule, p_uncond: float = 0.0,
              per_example_dropout: bool = True, prediction: str = "eps",
              weighting: str = "uniform", min_snr_gamma: float = 5.0):
    """Mean over the batch of the per-example loss (`prediction.loss`: the book's eps-MSE by
    default; v or x0 targets, min-SNR weighting) of `net(x_t, t, train=True)`.

    Batches are `(x0,)`, or `(x0, y)` for a conditional net (`net.num_classes` set), whose labels
    are dropped to the null label with probability `p_uncond` (see `drop_labels`).
    `loss(params, key, batch, model_state) -> (loss, {}, new_model_state)`, `jaxgen.train`'s
    signature: with a model state (BatchNorm), its batch statistics are updated in training
    mode; without one (GroupNorm), `None` passes through.
    """
    predictions.check(prediction, weighting)

    def loss(params, key, batch, model_state=None):
        x0, y = batch[0], (batch[1] if len(batch) > 1 else None)
        if y is not None:
            key, k_drop = jax.random.split(key)
            y = drop_labels(y, p_uncond, net.num_classes, per_example_dropout, key=k_drop)
        updates = {}

        def eps_fn(x, t):
            if model_state is None:
                return net.apply({"params": params}, x, t, y, train=True)
            out, new = net.apply({"params": params, **model_state}, x, t, y, train=True,
                                 mutable=list(model_state))
            updates.update(new)
            return out

        value = jnp.mean(predictions.loss(eps_fn, x0, schedule, prediction, weighting,
                                          min_snr_gamma, key=key))
        return value, {}, (updates if model_state is not None else None)

    return loss
