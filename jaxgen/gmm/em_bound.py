"""Why EM works, in numbers (book chapter 5): for any distribution q(z) over components,

    log p(x; theta) = ELBO(q, theta) + KL(q || p(z | x; theta))
    ELBO(q, theta) = sum_k q_k [log p(x, z=k; theta) - log q_k]   (<= log p(x), Jensen)

The E-step sets q = p(z | x; theta), closing the gap (KL = 0); the M-step maximises the ELBO
over theta with q fixed, which can only raise it, and log p(x) with it, since KL >= 0.
`em_bound_trace` records all three quantities before and after every half-step.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy

from jaxgen.gmm import _validate
from jaxgen.gmm.density import component_log_prob
from jaxgen.gmm.em import _m_step
from jaxgen.gmm.mixture import GMM

Array = jax.Array


class BoundTrace(NamedTuple):
    """Mean-over-points values at each state (q, theta) of EM, shape (2 n_iter + 1,) each.

    State 0 is (uniform q, the start); then E-step, M-step, E-step, ... alternate: odd states
    follow an E-step, even states (> 0) an M-step.
    """

    log_likelihood: Array  # log p(x; theta)
    elbo: Array  # ELBO(q, theta)
    kl: Array  # KL(q || p(z | x; theta)) >= 0
    step: tuple[str, ...]  # 'start', 'E', 'M', ...


@jax.jit
def bound_terms(gmm: GMM, x: Array, q: Array) -> tuple[Array, Array, Array]:
    """Mean over points of (log p(x), ELBO(q, theta), KL(q || p(z|x))) for responsibilities
    q (K, N) of data x (N, D)."""
    joint = jnp.log(gmm.weights)[:, None] + component_log_prob(gmm, x)  # log p(x, z=k)
    log_px = jax.nn.logsumexp(joint, axis=0)
    elbo = jnp.sum(q * joint, axis=0) - jnp.sum(xlogy(q, q), axis=0)
    kl = jnp.sum(xlogy(q, q) - q * (joint - log_px), axis=0)
    return jnp.mean(log_px), jnp.mean(elbo), jnp.mean(kl)


@jax.jit
def _e_step(gmm: GMM, x: Array) -> Array:
    joint = jnp.log(gmm.weights)[:, None] + component_log_prob(gmm, x)
    return jnp.exp(joint - jax.nn.logsumexp(joint, axis=0))


def em_bound_trace(x, init: GMM, n_iter: int, *, reg_covar: float = 0.0) -> BoundTrace:
    """Run `n_iter` EM iterations from `init` (as `gmm.fit` with `tol=0`), starting from
    uniform responsibilities, and return log p(x), the ELBO and the KL after every half-step."""
    _validate.check_x_gmm(init, x)
    _validate.check_reg_covar(reg_covar)
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
        raise ValueError(f"n_iter must be a positive int, got {n_iter!r}")
    gmm, x = _validate.as_float(init, x)
    k = np.shape(gmm.weights)[0]
    q = jnp.full((k, x.shape[0]), 1.0 / k, x.dtype)
    rows, steps = [bound_terms(gmm, x, q)], ["start"]
    m_step = jax.jit(lambda xx, qq: _m_step(xx, qq, jnp.asarray(reg_covar, x.dtype),
                                            gmm.covariance_type))
    for _ in range(n_iter):
        q = _e_step(gmm, x)
        rows.append(bound_terms(gmm, x, q))
        gmm = dataclasses.replace(m_step(x, q), covariance_type=gmm.covariance_type)
        rows.append(bound_terms(gmm, x, q))
        steps += ["E", "M"]
    log_px, elbo, kl = (jnp.stack(v) for v in zip(*rows, strict=True))
    return BoundTrace(log_px, elbo, kl, tuple(steps))
