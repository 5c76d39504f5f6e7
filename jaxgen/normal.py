"""The univariate normal distribution and its maximum-likelihood estimate (book chapters 1-2).

    N(x | mu, sigma) = exp(-(x - mu)^2 / (2 sigma^2)) / sqrt(2 pi sigma^2)

Every function broadcasts `x`, `mu` and `sigma` against each other, is jit- and vmap-able, and
computes in float32 unless `jax_enable_x64` is on and the inputs are float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm

from jaxgen import _checks

ArrayLike = jax.typing.ArrayLike
Array = jax.Array


def log_prob(x: ArrayLike, mu: ArrayLike = 0.0, sigma: ArrayLike = 1.0) -> Array:
    """log N(x | mu, sigma) = -(x - mu)^2 / (2 sigma^2) - log sigma - log(2 pi) / 2.

    Args:
      x, mu, sigma: broadcastable arrays; sigma > 0.
    Returns:
      the log density, with the broadcast shape of the arguments.
    """
    _checks.positive("sigma", sigma)
    x, mu, sigma = _checks.as_float(x, mu, sigma)
    return norm.logpdf(x, mu, sigma)


def pdf(x: ArrayLike, mu: ArrayLike = 0.0, sigma: ArrayLike = 1.0) -> Array:
    """N(x | mu, sigma), the density itself (see `log_prob`)."""
    return jnp.exp(log_prob(x, mu, sigma))


def cdf(x: ArrayLike, mu: ArrayLike = 0.0, sigma: ArrayLike = 1.0) -> Array:
    """P(X <= x) = (1 + erf((x - mu) / (sigma sqrt 2))) / 2 for X ~ N(mu, sigma)."""
    _checks.positive("sigma", sigma)
    x, mu, sigma = _checks.as_float(x, mu, sigma)
    return norm.cdf(x, mu, sigma)


def sample(
    mu: ArrayLike = 0.0, sigma: ArrayLike = 1.0, shape: Sequence[int] = (), *, key: Array
) -> Array:
    """Draw x = mu + sigma * eps with eps ~ N(0, 1).

    Args:
      key: a `jax.random` key.
      mu, sigma: broadcastable parameters; sigma > 0.
      shape: the sample shape; the result has shape `shape` broadcast with mu and sigma.
    """
    _checks.positive("sigma", sigma)
    mu, sigma = _checks.as_float(mu, sigma)
    out_shape = jnp.broadcast_shapes(tuple(shape), mu.shape, sigma.shape)
    return mu + sigma * jax.random.normal(key, out_shape, mu.dtype)


def mle(x: ArrayLike, ddof: int = 0) -> tuple[Array, Array]:
    """Maximum-likelihood (mu, sigma) of samples `x` of shape (N, ...), reduced over axis 0.

        mu = mean(x),  sigma^2 = sum((x - mu)^2) / (N - ddof)

    ddof 0 is the MLE (as np.std), biased: E[sigma^2] = (N - 1) / N * true variance; ddof 1 is
    the unbiased sample variance (as np.var(ddof=1) and the book's np.cov).
    """
    _checks.ndim_at_least("x", x, 1, "(N, ...)")
    _checks.finite("x", x)
    n = np.shape(x)[0]
    if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer)) or not 0 <= ddof < n:
        raise ValueError(f"ddof must be an int in 0..N-1 = 0..{n - 1}, got {ddof!r}")
    (x,) = _checks.as_float(x)
    mu = jnp.mean(x, axis=0)
    return mu, jnp.sqrt(jnp.sum(jnp.square(x - mu), axis=0) / (n - ddof))
