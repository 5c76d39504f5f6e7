"""Guided sampling (book chapter 10 and beyond): classifier-free guidance and classifier guidance,
as wrappers that turn a network into the `eps_fn(x_t, t)` (or `guide`) the samplers take.

Classifier-free guidance (Ho & Salimans 2022), one network with a null label:
    eps~ = eps(x_t, t, null) + gamma (eps(x_t, t, y) - eps(x_t, t, null))
gamma = 0 is unconditional, gamma = 1 conditional, gamma > 1 trades diversity for fidelity.
Guidance in a limited interval (Kynkaanniemi et al. 2024): guided only where the noise level
sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) lies in (sigma_lo, sigma_hi], conditional
(gamma = 1) elsewhere -- guidance at high noise narrows each class, at low noise it does little.

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


def cfg_eps(apply: CondEpsFn, y: jax.Array, null: int, gamma,
            active: Callable[[jax.Array], jax.Array] | None = None) -> Callable:
    """eps_fn(x_t, t) for classifier-free guidance toward labels y (B,) with scale gamma.

    The conditional and unconditional predictions come from ONE batched forward pass (the two
    halves of a doubled batch), so a guided sampler costs one network call per step.
    active(t) -> bool (t a scalar timestep; every sampler here gives all examples one t):
    where False, eps_fn is the plain conditional eps(x_t, t, y), one undoubled pass chosen by
    `lax.cond` (`sigma_interval` makes the limited interval of Kynkaanniemi et al. 2024).
    """
    y = jnp.asarray(y)

    def guided(x, t):
        both = apply(jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                     jnp.concatenate([y, jnp.full_like(y, null)]))
        cond, uncond = jnp.split(both, 2)
        return uncond + gamma * (cond - uncond)

    if active is None:
        return guided
    return lambda x, t: jax.lax.cond(active(t[0]), guided, lambda x, t: apply(x, t, y), x, t)


def sigma_interval(alpha_bars: jax.Array, lo, hi) -> Callable[[jax.Array], jax.Array]:
    """active(t): whether sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t), the noise level on
    the data's scale (x_t / alpha_t = x_0 + sigma_t eps), lies in (lo, hi]."""
    sigma = jnp.sqrt((1.0 - alpha_bars) / alpha_bars)
    return lambda t: (sigma[t] > lo) & (sigma[t] <= hi)


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
