"""The multivariate normal distribution and its maximum-likelihood estimate (book chapter 3).

    N(x | mu, Sigma) = exp(-(x - mu)^T Sigma^-1 (x - mu) / 2) / sqrt((2 pi)^D |Sigma|)

Computed through the Cholesky factor Sigma = L L^T: with z = L^-1 (x - mu),
    log N = -|z|^2 / 2 - sum(log diag L) - D log(2 pi) / 2.
The covariance is never inverted and no determinant is formed. L^-1 is obtained by a triangular
solve against the identity (D x D, cheap), so the per-point work is one matmul: on XLA:CPU that
is ~8x faster than a triangular solve with a million right-hand sides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import _checks

ArrayLike = jax.typing.ArrayLike
Array = jax.Array


def whitening(cov: ArrayLike) -> tuple[Array, Array]:
    """Return (L^-1, log|Sigma|/2) for Sigma = L L^T of shape (..., D, D).

    `L^-1 (x - mu)` has identity covariance; log|Sigma|/2 = sum(log diag L).
    """
    L = jnp.linalg.cholesky(cov)
    eye = jnp.broadcast_to(jnp.eye(L.shape[-1], dtype=L.dtype), L.shape)
    L_inv = jax.lax.linalg.triangular_solve(L, eye, left_side=True, lower=True)
    half_log_det = jnp.sum(jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
    return L_inv, half_log_det


def _check(x, mean, cov) -> None:
    _checks.ndim_at_least("mean", mean, 1, "(..., D)")
    d = jnp.shape(mean)[-1]
    _checks.last_dim("x", x, d, "(..., D)")
    if jnp.shape(cov)[-2:] != (d, d):
        raise ValueError(f"cov must have shape (..., D, D) with D={d}, got shape {jnp.shape(cov)}")
    _checks.spd("cov", cov)


def log_prob(x: ArrayLike, mean: ArrayLike, cov: ArrayLike) -> Array:
    """log N(x | mean, cov).

    Args:
      x: points, shape (..., D).
      mean: shape (..., D), broadcastable against x.
      cov: symmetric positive definite, shape (..., D, D), batch dims broadcastable against x.
    Returns:
      log densities, shape: the broadcast batch shape of x, mean and cov.
    """
    _check(x, mean, cov)
    return _log_prob(*_checks.as_float(x, mean, cov))


@jax.jit
def _log_prob(x, mean, cov):
    L_inv, half_log_det = whitening(cov)
    if L_inv.ndim == 2:  # one covariance for every point: a single (N, D) x (D, D) matmul
        z = (x - mean) @ L_inv.T
    else:
        z = jnp.einsum("...ij,...j->...i", L_inv, x - mean)
    d = x.shape[-1]
    return -0.5 * jnp.sum(z * z, axis=-1) - half_log_det - 0.5 * d * math.log(2 * math.pi)


def pdf(x: ArrayLike, mean: ArrayLike, cov: ArrayLike) -> Array:
    """N(x | mean, cov), the density itself (see `log_prob`)."""
    return jnp.exp(log_prob(x, mean, cov))


def sample(mean: ArrayLike, cov: ArrayLike, shape: Sequence[int] = (), *, key: Array) -> Array:
    """Draw x = mean + L eps with eps ~ N(0, I) and cov = L L^T.

    Args:
      key: a `jax.random` key.
      mean: shape (..., D); cov: shape (..., D, D).
      shape: the sample shape; the result has shape `shape` broadcast with the batch shape of
        mean and cov, followed by D.
    """
    _check(mean, mean, cov)
    mean, cov = _checks.as_float(mean, cov)
    batch = jnp.broadcast_shapes(tuple(shape), mean.shape[:-1], cov.shape[:-2])
    eps = jax.random.normal(key, (*batch, mean.shape[-1]), mean.dtype)
    L = jnp.linalg.cholesky(cov)
    return mean + jnp.einsum("...ij,...j->...i", L, eps)


def mle(x: ArrayLike, ddof: int = 0) -> tuple[Array, Array]:
    """Maximum-likelihood (mean, cov) of points `x` of shape (N, D).

        mean = sum_n x_n / N,   cov = sum_n (x_n - mean)(x_n - mean)^T / (N - ddof)

    ddof 0 is the MLE; ddof 1 is the unbiased estimate, what the book's `np.cov` computes.
    """
    if jnp.ndim(x) != 2:
        raise ValueError(f"x must have shape (N, D), got shape {jnp.shape(x)}")
    _checks.finite("x", x)
    n = np.shape(x)[0]
    if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer)) or not 0 <= ddof < n:
        raise ValueError(f"ddof must be an int in 0..N-1 = 0..{n - 1}, got {ddof!r}")
    (x,) = _checks.as_float(x)
    mean = jnp.mean(x, axis=0)
    diff = x - mean
    return mean, diff.T @ diff / (n - ddof)
