"""Kullback-Leibler divergences, the pieces chapter 5 builds the ELBO from.

    D_KL(p || q) = E_p[log p(x) - log q(x)] >= 0, with equality iff p = q.

All are elementwise/per-example and unreduced except over the event axis they name, so they
compose into losses (the caller chooses `.mean()` or `.sum()` over a batch).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import rel_entr

from jaxgen import _checks

ArrayLike = jax.typing.ArrayLike
Array = jax.Array


def discrete(p: ArrayLike, q: ArrayLike) -> Array:
    """D_KL(p || q) = sum_i p_i log(p_i / q_i) over the last axis, with 0 log 0 = 0.

    p and q: probability vectors of shape (..., K), each summing to 1.
    """
    _checks.probabilities("p", p)
    _checks.probabilities("q", q)
    return jnp.sum(rel_entr(*_checks.as_float(p, q)), axis=-1)


def normal(mu_p: ArrayLike, sigma_p: ArrayLike, mu_q: ArrayLike, sigma_q: ArrayLike) -> Array:
    """D_KL(N(mu_p, sigma_p^2) || N(mu_q, sigma_q^2)), elementwise:

        log(sigma_q / sigma_p) + (sigma_p^2 + (mu_p - mu_q)^2) / (2 sigma_q^2) - 1/2
    """
    _checks.positive("sigma_p", sigma_p)
    _checks.positive("sigma_q", sigma_q)
    mu_p, sigma_p, mu_q, sigma_q = _checks.as_float(mu_p, sigma_p, mu_q, sigma_q)
    ratio = jnp.square(sigma_p / sigma_q)
    return 0.5 * (ratio + jnp.square((mu_p - mu_q) / sigma_q) - 1.0 - jnp.log(ratio))


def diag_normal(mu_p: ArrayLike, sigma_p: ArrayLike, mu_q: ArrayLike, sigma_q: ArrayLike) -> Array:
    """D_KL between diagonal Gaussians: `normal` summed over the event axis, (..., D) -> (...)."""
    return jnp.sum(normal(mu_p, sigma_p, mu_q, sigma_q), axis=-1)


def standard_normal_from_logvar(mu: ArrayLike, logvar: ArrayLike) -> Array:
    """D_KL(N(mu, diag(exp(logvar))) || N(0, I)) = -1/2 sum(1 + logvar - mu^2 - exp(logvar)).

    The VAE's regulariser, parameterised as the encoder outputs it; (..., D) -> (...).
    """
    mu, logvar = _checks.as_float(mu, logvar)
    return -0.5 * jnp.sum(1.0 + logvar - jnp.square(mu) - jnp.exp(logvar), axis=-1)


def monte_carlo(
    sample_p: Callable[[Array, int], Array],
    log_p: Callable[[Array], Array],
    log_q: Callable[[Array], Array],
    n: int,
    *,
    key: Array,
) -> Array:
    """Monte Carlo estimate D_KL(p || q) ~ (1/n) sum_i [log p(x_i) - log q(x_i)], x_i ~ p.

    Args:
      key: a `jax.random` key.
      sample_p: `sample_p(key, n)` returns n draws from p, shape (n, ...).
      log_p, log_q: log densities evaluated on a batch of draws, returning shape (n,).
      n: number of draws; the standard error falls as 1/sqrt(n).
    """
    if int(n) < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    x = sample_p(key, int(n))
    return jnp.mean(log_p(x) - log_q(x))
