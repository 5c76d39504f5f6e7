"""A mixture's density, posterior over components, samples and information criteria (book
chapter 4).

    log p(x) = logsumexp_k (log pi_k + log N(x | mu_k, Sigma_k))
    p(z = k | x) = pi_k N(x | mu_k, Sigma_k) / p(x)
    BIC = -2 log L + p log N,  AIC = -2 log L + 2 p
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import mvn
from jaxgen.gmm import _kernels, _validate
from jaxgen.gmm.mixture import GMM, n_parameters

ArrayLike = jax.typing.ArrayLike
Array = jax.Array


def component_log_prob(gmm: GMM, x: Array) -> Array:
    """log N(x_n | mu_k, Sigma_k), shape (K, N)."""
    L_inv, half_log_det = mvn.whitening(gmm.covs)  # (K, D, D), (K,)
    maha = _kernels.sq_mahalanobis(x, gmm.means, L_inv)
    d = x.shape[-1]
    return -0.5 * maha - half_log_det[:, None] - 0.5 * d * math.log(2 * math.pi)


def posterior(gmm: GMM, x: Array) -> tuple[Array, Array]:
    """(responsibilities q, shape (K, N), and log p(x_n), shape (N,)).

    Internally responsibilities are (K, N): every reduction over points then runs along the
    contiguous axis (the public functions return the conventional (N, K)).
    """
    joint = jnp.log(gmm.weights)[:, None] + component_log_prob(gmm, x)
    log_px = _kernels.logsumexp_rows(joint)
    return jnp.exp(joint - log_px), log_px


def log_prob(gmm: GMM, x: ArrayLike) -> Array:
    """log p(x_n) = logsumexp_k (log pi_k + log N(x_n | mu_k, Sigma_k)), shape (N,) for x (N, D)."""
    _validate.check_x_gmm(gmm, x)
    return posterior(*_validate.as_float(gmm, x))[1]


def sample(gmm: GMM, n: int, *, key: Array) -> tuple[Array, Array]:
    """Ancestral sampling: z_i ~ Categorical(pi), x_i ~ N(mu_z, Sigma_z).

    Returns:
      (x, z): points of shape (n, D) and their component labels of shape (n,).
    """
    _validate.check_gmm(gmm)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    return _sample(key, _validate.as_float(gmm)[0], int(n))


@functools.partial(jax.jit, static_argnums=2)
def _sample(key, gmm: GMM, n: int):
    kz, kx = jax.random.split(key)
    z = jax.random.categorical(kz, jnp.log(gmm.weights), shape=(n,))
    L = jnp.linalg.cholesky(gmm.covs)
    eps = jax.random.normal(kx, (n, gmm.means.shape[1]), gmm.means.dtype)
    return gmm.means[z] + jnp.einsum("nij,nj->ni", L[z], eps), z


def bic(gmm: GMM, x: ArrayLike) -> Array:
    """Bayesian information criterion -2 log L + p log N (lower is better)."""
    n = np.shape(x)[0]
    return -2 * jnp.sum(log_prob(gmm, x)) + n_parameters(gmm) * math.log(n)


def aic(gmm: GMM, x: ArrayLike) -> Array:
    """Akaike information criterion -2 log L + 2 p (lower is better)."""
    return -2 * jnp.sum(log_prob(gmm, x)) + 2 * n_parameters(gmm)
