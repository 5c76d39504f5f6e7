"""What makes an estimator good, measured by simulation (point estimation, book chapter 2).

For an estimator theta_hat = estimator(x) of a parameter theta from data x ~ p_theta of size N:

    bias = E[theta_hat] - theta,   variance = Var[theta_hat],
    MSE = E[(theta_hat - theta)^2] = bias^2 + variance

estimated over `trials` simulated data sets drawn at once and estimated as one vmapped program
(no Python loop over data sets). An estimator is consistent when theta_hat -> theta as N grows:
its MSE -> 0.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def simulate(estimator: Callable[[Array], Array], sampler: Callable[[Array, int], Array],
             n: int, trials: int, *, key: Array) -> Array:
    """`trials` estimates, each from its own data set of size n: shape (trials, ...).

    Args:
      estimator: `estimator(x)` for one data set x of shape (n, ...), a pure jax function.
      sampler: `sampler(key, n)` draws one data set of size n.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not isinstance(trials, int) or trials < 2:
        raise ValueError(f"trials must be an int >= 2, got {trials!r}")
    keys = jax.random.split(key, trials)
    return jax.jit(jax.vmap(lambda k: estimator(sampler(k, n))))(keys)


def bias_variance(estimates: Array, truth) -> dict:
    """Bias, variance (ddof 1 across trials) and MSE of `estimates` (trials, ...) around `truth`,
    each with the standard error of its Monte Carlo estimate where it has a simple one."""
    estimates = jnp.asarray(estimates)
    t = estimates.shape[0]
    err = estimates - truth
    bias = jnp.mean(err, axis=0)
    variance = jnp.var(estimates, axis=0, ddof=1)
    mse = jnp.mean(jnp.square(err), axis=0)
    return {"bias": bias, "bias_se": jnp.sqrt(variance / t), "variance": variance,
            "mse": mse, "mse_se": jnp.std(jnp.square(err), axis=0, ddof=1) / jnp.sqrt(t)}
