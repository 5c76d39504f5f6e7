"""Guided sampling (book chapter 10 and beyond): classifier-free guidance and classifier guidance,
as wrappers that turn a network into the `eps_fn(x_t, t)` (or `guide`) the samplers take.

Classifier-free guidance (Ho & Salimans 2022), one network with a null label:
    eps~ = eps(x_t, t, null) + gamma (eps(x_t, t, y) - eps(x_t, t, null))
gamma = 0 is unconditional, gamma = 1 conditional, gamma > 1 trades diversity for fidelity.

Classifier guidance (Dhariwal & Nichol 2021) with a classifier p(y | x_t, t) of noised images:
    ancestral step:  mu~ = mu_theta + s Sigma_t grad_x log p(y | x_t, t)
    DDIM:            eps~ = eps - s sqrt(1 - alpha_bar_t) grad_x log p(y | x_t, t)
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

# a conditional network `apply(x_t, t, y) -> eps`, y (B,) labels (the null label included)
CondEpsFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def cfg_eps(apply: CondEpsFn, y: jax.Array, null: int, gamma) -> Callable:
    """eps_fn(x_t, t) for classifier-free guidance toward labels y (B,) with scale gamma.

    The conditional and unconditional predictions come from ONE batched forward pass (the two
    halves of a doubled batch), so a guided sampler costs one network call per step.
    """
    y = jnp.asarray(y)

    def eps_fn(x, t):
        both = apply(jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                     jnp.concatenate([y, jnp.full_like(y, null)]))
        cond, uncond = jnp.split(both, 2)
        return uncond + gamma * (cond - uncond)

    return eps_fn


def classifier_grad(logits_fn: Callable, y: jax.Array) -> Callable:
    """grad_x log p(y | x_t, t) per example, (B, ...), for a classifier
    `logits_fn(x_t, t) -> (B, classes)` whose examples are independent (no batch statistics)."""
    def log_p(x, t):
        return jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(logits_fn(x, t)), y[:, None], 1))

    return jax.grad(log_p)


def scaled_guide(grad: Callable, scale) -> Callable:
    """`guide(x_t, t) = scale * grad(x_t, t)`; at scale 0 (which may be traced) the gradient is
    skipped by `lax.cond`, not computed and multiplied by 0."""
    def guide(x, t):
        return jax.lax.cond(scale == 0, lambda: jnp.zeros_like(x), lambda: scale * grad(x, t))

    return guide


def classifier_guide(logits_fn: Callable, y: jax.Array, scale) -> Callable:
    """`guide(x_t, t) = scale * grad_x log p(y | x_t, t)`, for `ddpm.sample`/`ddim_sample`."""
    return scaled_guide(classifier_grad(logits_fn, jnp.asarray(y)), scale)
