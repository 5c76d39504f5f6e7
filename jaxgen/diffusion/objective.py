"""The DDPM training objective for a linen epsilon-network, in the form `jaxgen.train` takes."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxgen.diffusion import ddpm
from jaxgen.diffusion.schedule import Schedule


def make_loss(net: nn.Module, schedule: Schedule, stateful: bool):
    """Mean over the batch of the per-example eps-MSE (`ddpm.loss`) of `net(x_t, t, train=True)`.

    stateful=False: `loss(params, key, (x0,)) -> (loss, {})` (e.g. GroupNorm).
    stateful=True: `loss(params, key, (x0,), model_state) -> (loss, {}, new_model_state)`, with
    BatchNorm's batch statistics updated in training mode, as `jaxgen.train` expects.
    """
    def loss(params, key, batch, model_state=None):
        (x0,) = batch
        updates = {}

        def eps_fn(x, t):
            if not stateful:
                return net.apply({"params": params}, x, t, train=True)
            out, new = net.apply({"params": params, **model_state}, x, t, train=True,
                                 mutable=list(model_state))
            updates.update(new)
            return out

        value = jnp.mean(ddpm.loss(eps_fn, key, x0, schedule))
        return (value, {}, updates) if stateful else (value, {})

    return loss
