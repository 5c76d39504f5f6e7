"""The DDPM variational bound in bits per dimension (Ho et al. 2020, eq. 5; beyond the book).

    -log p(x_0) <= L_T + sum_{t=2..T} L_{t-1} + L_0
    L_T     = KL(q(x_T | x_0) || N(0, I))
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))
            = |mu~_t(x_t, x_0) - mu_theta(x_t, t)|^2 / (2 beta~_t)      (equal variances beta~_t)
    L_0     = -log p(x_0 | x_1), a Gaussian N(mu_theta(x_1, 1), beta_1) integrated over each
              pixel's bin of width 1/255 (data on the grid {0, 1/255, ..., 1}; the edge bins
              extend to +-inf)

Bits per dimension = bound / (D ln 2), D the number of pixels. The sum over t is estimated
without bias by T times the mean of L_{t-1} over uniformly drawn t (t = 1 gives L_0).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

from jaxgen.diffusion.ddpm import EpsFn, _expand, posterior, q_sample
from jaxgen.diffusion.schedule import Schedule


def prior_kl(x0: jax.Array, schedule: Schedule) -> jax.Array:
    """L_T in nats per example (B,): KL(N(sqrt(ab_T) x0, 1 - ab_T) || N(0, 1)), pixels summed."""
    ab = schedule.alpha_bars[-1]
    mean, var = jnp.sqrt(ab) * x0, 1.0 - ab
    kl = 0.5 * (var + mean**2 - 1.0 - jnp.log(var))
    return kl.reshape(x0.shape[0], -1).sum(1)


def decoder_nll(x0: jax.Array, mean: jax.Array, var, bins: int = 256) -> jax.Array:
    """-log of N(mean, var) integrated over the bin of each pixel of x0 in [0, 1], summed (B,)."""
    half = 0.5 / (bins - 1)
    sd = jnp.sqrt(var)
    upper = jnp.where(x0 >= 1.0 - half, 1.0, ndtr((x0 + half - mean) / sd))
    lower = jnp.where(x0 <= half, 0.0, ndtr((x0 - half - mean) / sd))
    nll = -jnp.log(jnp.clip(upper - lower, 1e-12))
    return nll.reshape(x0.shape[0], -1).sum(1)


def term(eps_fn: EpsFn, x0: jax.Array, t: jax.Array, schedule: Schedule, *,
         key: jax.Array) -> jax.Array:
    """L_{t-1} in nats per example (B,) for per-example timesteps t (B,) in 1..T (L_0 at t=1)."""
    noise = jax.random.normal(key, x0.shape, x0.dtype)
    x_t = q_sample(x0, t, noise, schedule)
    eps = eps_fn(x_t, t)
    beta, alpha, ab = (_expand(a[t], x0) for a in
                       (schedule.betas, schedule.alphas, schedule.alpha_bars))
    mu_theta = (x_t - beta / jnp.sqrt(1 - ab) * eps) / jnp.sqrt(alpha)
    mu_q, var_q = posterior(x0, x_t, t, schedule)
    kl = (jnp.square(mu_q - mu_theta) / (2 * jnp.clip(var_q, 1e-20))).reshape(
        x0.shape[0], -1).sum(1)
    return jnp.where(t == 1, decoder_nll(x0, mu_theta, beta), kl)


def bits_per_dim(eps_fn: EpsFn, x0: jax.Array, schedule: Schedule, n_t: int | None = 8, *,
                 key: jax.Array) -> jax.Array:
    """The variational bound of each image x0 (B, ...) in bits per dimension, (B,).

    n_t timesteps per image drawn uniformly (an unbiased estimate); n_t=None sums all T terms
    exactly (T network calls per image). Both run as one `lax.scan` over timestep draws.
    """
    B, T = x0.shape[0], schedule.T
    k_t, k_noise = jax.random.split(key)
    if n_t is None:
        ts, weight = jnp.broadcast_to(jnp.arange(1, T + 1)[:, None], (T, B)), 1.0
    else:
        if n_t < 1:
            raise ValueError(f"n_t must be a positive int or None, got {n_t}")
        ts, weight = jax.random.randint(k_t, (n_t, B), 1, T + 1), T / n_t

    def add(total, i_t):
        i, t = i_t
        return total + term(eps_fn, x0, t, schedule, key=jax.random.fold_in(k_noise, i)), None

    total, _ = jax.lax.scan(add, jnp.zeros((B,)), (jnp.arange(ts.shape[0]), ts))
    nats = prior_kl(x0, schedule) + weight * total
    return nats / (math.prod(x0.shape[1:]) * math.log(2.0))
