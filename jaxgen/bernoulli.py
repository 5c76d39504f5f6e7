"""The Bernoulli distribution and the point estimate of its parameter (coin flips, book ch. 2).

    p(x | theta) = theta^x (1 - theta)^(1 - x),   x in {0, 1}
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import _checks

ArrayLike = jax.typing.ArrayLike
Array = jax.Array


def _check_theta(theta) -> None:
    if _checks.is_concrete(theta):
        a = np.asarray(theta)
        if not np.all((a >= 0) & (a <= 1)):
            shown = a.tolist() if a.size < 7 else f"shape {a.shape}"
            raise ValueError(f"theta must lie in [0, 1], got {shown}")


def log_prob(x: ArrayLike, theta: ArrayLike) -> Array:
    """log p(x | theta) = x log theta + (1 - x) log(1 - theta), with 0 log 0 = 0.

    `x` may also be a probability in [0, 1] (then this is minus the binary cross-entropy).
    """
    _check_theta(theta)
    x, theta = _checks.as_float(x, theta)
    return jax.scipy.special.xlogy(x, theta) + jax.scipy.special.xlog1py(1 - x, -theta)


def mle(x: ArrayLike) -> Array:
    """Maximum-likelihood theta = mean(x) of 0/1 outcomes `x` of shape (N, ...), over axis 0."""
    _checks.ndim_at_least("x", x, 1, "(N, ...)")
    _checks.finite("x", x)
    if _checks.is_concrete(x) and not np.all(np.isin(np.asarray(x), (0, 1))):
        raise ValueError("x must hold only 0 and 1 outcomes")
    return jnp.mean(_checks.as_float(x)[0], axis=0)
