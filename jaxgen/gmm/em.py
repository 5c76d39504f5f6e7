"""Fitting a mixture by expectation-maximisation (book chapter 5).

E-step:  q_nk = pi_k N(x_n | mu_k, Sigma_k) / p(x_n)                 (responsibilities)
M-step:  N_k = sum_n q_nk,  pi_k = N_k / N,  mu_k = sum_n q_nk x_n / N_k,
         Sigma_k = sum_n q_nk (x_n - mu_k)(x_n - mu_k)^T / N_k + reg_covar I

`fit` runs the whole EM loop as one compiled `lax.while_loop`; `n_init` restarts are one vmapped
program, each started by k-means++ seeding (or random responsibilities).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import _checks
from jaxgen.gmm import _kernels, _validate
from jaxgen.gmm.density import posterior as _posterior
from jaxgen.gmm.mixture import GMM

ArrayLike = jax.typing.ArrayLike
Array = jax.Array

INIT_METHODS = ("kmeans++", "random")


class FitInfo(NamedTuple):
    """What `fit` reports besides the parameters.

    log_likelihood: mean log-likelihood before the first iteration and after each one, shape
      (max_iter + 1,); entries past `n_iter` are NaN. `log_likelihood[n_iter]` is the final value.
    n_iter: number of EM iterations run.
    converged: whether the change fell below `tol` before `max_iter`.
    """

    log_likelihood: Array
    n_iter: Array
    converged: Array


def e_step(gmm: GMM, x: ArrayLike) -> Array:
    """Responsibilities q_nk = p(z = k | x_n), shape (N, K); each row sums to 1."""
    _validate.check_x_gmm(gmm, x)
    return _posterior(*_validate.as_float(gmm, x))[0].T


predict_proba = e_step


def predict(gmm: GMM, x: ArrayLike) -> Array:
    """The most responsible component for each point, shape (N,) int."""
    return jnp.argmax(e_step(gmm, x), axis=-1)


def m_step(x: ArrayLike, resp: ArrayLike, *, reg_covar: float = 1e-6,
           covariance_type: str = "full") -> GMM:
    """The M-step: the mixture that maximises the ELBO for fixed responsibilities.

        N_k = sum_n q_nk,  pi_k = N_k / N,  mu_k = sum_n q_nk x_n / N_k,
        Sigma_k = sum_n q_nk (x_n - mu_k)(x_n - mu_k)^T / N_k + reg_covar I

    (constrained as `covariance_type` says; as scikit-learn's `_estimate_gaussian_parameters`).

    Args:
      x: data, shape (N, D), finite.
      resp: responsibilities q_nk, shape (N, K), non-negative (rows of `e_step` sum to 1).
      reg_covar: added to every covariance's diagonal.
      covariance_type: 'full', 'diag', 'spherical' or 'tied'.
    Returns:
      the `GMM`; whatever the type, `covs` holds full (K, D, D) matrices.
    """
    _validate.check_x(x)
    _validate.check_covariance_type(covariance_type)
    _validate.check_reg_covar(reg_covar)
    if np.ndim(resp) != 2 or np.shape(resp)[0] != np.shape(x)[0]:
        raise ValueError(f"resp must have shape (N, K) with N={np.shape(x)[0]}, "
                         f"got shape {np.shape(resp)}")
    _checks.finite("resp", resp)
    x, resp = _checks.as_float(x, resp)
    return _m_step_jit(x, resp, jnp.asarray(reg_covar, x.dtype), covariance_type)


@functools.partial(jax.jit, static_argnums=3)
def _m_step_jit(x, resp, reg_covar, covariance_type):
    return _m_step(x, resp.T, reg_covar, covariance_type)


def _m_step(x: Array, q: Array, reg_covar, covariance_type: str) -> GMM:
    """The M-step for data x (N, D) and responsibilities q (K, N)."""
    eps = 10 * jnp.finfo(x.dtype).eps  # keeps an emptied component's N_k off zero
    nk = jnp.sum(q, axis=1) + eps  # (K,)
    weights = nk / jnp.sum(nk)
    means = q @ x / nk[:, None]  # (K, D)
    d = x.shape[1]
    eye = jnp.eye(d, dtype=x.dtype)
    if covariance_type == "tied":
        # sum_k sum_n q_nk (x_n - mu_k)(x_n - mu_k)^T = sum_n s_n x_n x_n^T - sum_k N_k mu_k mu_k^T
        # with s_n = sum_k q_nk; any common shift c of x and mu leaves it unchanged, and shifting
        # by the weighted mean keeps the float32 difference well conditioned.
        s = _kernels.sum_rows(q)
        c = s @ x / jnp.sum(s)
        xc, mc = x - c, means - c
        cov = ((s[:, None] * xc).T @ xc - (nk[:, None] * mc).T @ mc) / jnp.sum(nk)
        cov = 0.5 * (cov + cov.T) + reg_covar * eye
        return GMM(weights, means, jnp.broadcast_to(cov, (len(nk), d, d)), covariance_type)
    if covariance_type == "full":
        # A sum of outer products of centred points stays positive semi-definite in floating
        # point, so a collapsing component ends at reg_covar * I rather than at NaN.
        covs = _kernels.scatter_full(x, q, means) / nk[:, None, None]
        covs = 0.5 * (covs + jnp.swapaxes(covs, 1, 2)) + reg_covar * eye
        return GMM(weights, means, covs, covariance_type)
    var = _kernels.scatter_diag(x, q, means) / nk[:, None] + reg_covar  # (K, D)
    if covariance_type == "spherical":
        var = jnp.broadcast_to(jnp.mean(var, axis=1, keepdims=True), var.shape)
    return GMM(weights, means, var[:, :, None] * eye, covariance_type)


def _kmeans_plus_plus(key: Array, x: Array, k: int) -> Array:
    """k-means++ seeding: each new centre is a data point drawn with probability ~ D(x)^2."""
    n = x.shape[0]
    key, first = jax.random.split(key)
    centres = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(x[jax.random.randint(first, (), 0, n)])
    d2 = jnp.sum(jnp.square(x - centres[0]), axis=1)

    def add(i, carry):
        centres, d2, key = carry
        key, sub = jax.random.split(key)
        j = jax.random.categorical(sub, jnp.log(d2 / jnp.sum(d2)))
        centres = centres.at[i].set(x[j])
        return centres, jnp.minimum(d2, jnp.sum(jnp.square(x - x[j]), axis=1)), key

    centres, _, _ = jax.lax.fori_loop(1, k, add, (centres, d2, key))
    return centres


def _initial_resp(key: Array, x: Array, k: int, init_method: str) -> Array:
    """Starting responsibilities, shape (K, N)."""
    if init_method == "random":  # as scikit-learn's init_params='random'
        r = jax.random.uniform(key, (k, x.shape[0]), x.dtype)
        return r / jnp.sum(r, axis=0)
    centres = _kmeans_plus_plus(key, x, k)
    d2 = jnp.sum(jnp.square(x[None] - centres[:, None]), axis=-1)  # (K, N)
    return jax.nn.one_hot(jnp.argmin(d2, axis=0), k, dtype=x.dtype).T


def _em(x, w, gmm0: GMM, tol, reg_covar, max_iter: int, covariance_type: str):
    """EM from gmm0 as one lax.while_loop. w: per-point weights (N,) summing to 1."""
    def posterior(g):
        q, log_px = _posterior(g, x)
        return q * w, jnp.sum(w * log_px)

    resp0, ll0 = posterior(gmm0)
    trace0 = jnp.full((max_iter + 1,), jnp.nan, x.dtype).at[0].set(ll0)

    def cond(s):
        return (s["i"] < max_iter) & ~s["converged"]

    def body(s):
        g = _m_step(x, s["resp"], reg_covar, covariance_type)
        resp, ll = posterior(g)
        return dict(gmm=g, resp=resp, ll=ll, trace=s["trace"].at[s["i"] + 1].set(ll),
                    i=s["i"] + 1, converged=jnp.abs(ll - s["ll"]) < tol)

    s = dict(gmm=gmm0, resp=resp0, ll=ll0, trace=trace0, i=jnp.asarray(0),
             converged=jnp.asarray(False))
    s = jax.lax.while_loop(cond, body, s)
    return s["gmm"], FitInfo(s["trace"], s["i"], s["converged"])


@functools.partial(jax.jit, static_argnames=("k", "n_init", "max_iter", "covariance_type",
                                             "init_method"))
def _fit(x, w, init, key, tol, reg_covar, *, k, n_init, max_iter, covariance_type, init_method):
    # EM is translation-equivariant: fitting centred data keeps float32 sums well conditioned.
    shift = w @ x
    x = x - shift
    run = functools.partial(_em, x, w, tol=tol, reg_covar=reg_covar, max_iter=max_iter,
                            covariance_type=covariance_type)
    if init is not None:
        gmm, info = run(dataclasses.replace(init, means=init.means - shift,
                                            covariance_type=covariance_type))
    else:
        def from_key(key):
            resp = _initial_resp(key, x, k, init_method) * w
            return run(_m_step(x, resp, reg_covar, covariance_type))

        gmms, infos = jax.vmap(from_key)(jax.random.split(key, n_init))
        final = jnp.take_along_axis(infos.log_likelihood, infos.n_iter[:, None], axis=1)[:, 0]
        best = jnp.argmax(final)
        gmm, info = jax.tree_util.tree_map(lambda a: a[best], (gmms, infos))
    return dataclasses.replace(gmm, means=gmm.means + shift), info


def fit(
    x: ArrayLike,
    init: GMM | int,
    *,
    key: Array | None = None,
    max_iter: int = 100,
    tol: float = 1e-4,
    reg_covar: float = 1e-6,
    covariance_type: str = "full",
    n_init: int = 1,
    sample_weight: ArrayLike | None = None,
    init_method: str = "kmeans++",
) -> tuple[GMM, FitInfo]:
    """Fit a Gaussian mixture to x by EM, compiled as one `lax.while_loop`.

    Args:
      x: data, shape (N, D), finite.
      init: a `GMM` to start from (as the book does), or the number of components K, in which
        case each start is drawn from `key` by `init_method` ('kmeans++' seeding then one M-step
        on the hard assignment, or 'random' responsibilities as in scikit-learn).
      key: a `jax.random` key; required when `init` is an int.
      max_iter: maximum number of EM iterations.
      tol: stop when the mean log-likelihood changes by less than `tol`; 0 runs exactly
        `max_iter` iterations.
      reg_covar: added to every covariance's diagonal in the M-step.
      covariance_type: 'full', 'diag', 'spherical' or 'tied' (as in scikit-learn).
      n_init: number of starts drawn from `key`, run as one vmapped program; the one with the
        highest final log-likelihood is returned. Only with an int `init`.
      sample_weight: optional non-negative weights per point, shape (N,); the mean
        log-likelihood and the M-step become weighted.
    Returns:
      (gmm, info): the fitted `GMM` and a `FitInfo` with the log-likelihood trace.
    """
    _validate.check_x(x)
    _validate.check_covariance_type(covariance_type)
    _validate.check_reg_covar(reg_covar)
    n, d = np.shape(x)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
    if _checks.is_concrete(tol) and not float(tol) >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    if isinstance(n_init, bool) or not isinstance(n_init, int) or n_init < 1:
        raise ValueError(f"n_init must be a positive int, got {n_init!r}")
    if isinstance(init, GMM):
        _validate.check_gmm(init, d)
        if n_init != 1:
            raise ValueError(f"n_init={n_init} needs init to be an int K; an explicit GMM "
                             "start is a single start")
        k, start = int(np.shape(init.weights)[0]), init
    elif isinstance(init, (int, np.integer)) and not isinstance(init, bool):
        k, start = int(init), None
        if k < 1:
            raise ValueError(f"init must be a GMM or a positive int K, got {init!r}")
        if key is None:
            raise ValueError("key is required when init is an int K (it draws the start)")
        if init_method not in INIT_METHODS:
            raise ValueError(f"init_method must be one of {INIT_METHODS}, got {init_method!r}")
    else:
        raise ValueError(f"init must be a GMM or a positive int K, got {type(init).__name__}")
    if k > n:
        raise ValueError(f"init asks for K={k} components but x has only N={n} points (K > N)")

    if start is not None:
        start, x = _validate.as_float(start, x)
    else:
        (x,) = _checks.as_float(x)
    dtype = x.dtype
    if sample_weight is None:
        w = jnp.full((n,), 1.0 / n, dtype)
    else:
        if np.shape(sample_weight) != (n,):
            raise ValueError(f"sample_weight must have shape (N,)=({n},), "
                             f"got {np.shape(sample_weight)}")
        if _checks.is_concrete(sample_weight):
            sw = np.asarray(sample_weight, np.float64)
            if not np.all(np.isfinite(sw)) or np.any(sw < 0) or sw.sum() <= 0:
                raise ValueError("sample_weight must be finite, non-negative and not all zero")
        w = jnp.asarray(sample_weight, dtype)
        w = w / jnp.sum(w)
    return _fit(x, w, start, key, jnp.asarray(tol, dtype),
                jnp.asarray(reg_covar, dtype), k=k, n_init=n_init, max_iter=max_iter,
                covariance_type=covariance_type, init_method=init_method)
