"""Argument checks run at the Python boundary, before anything is traced.

Each check looks only at concrete values: under `jit` or `vmap` the arguments are tracers and
the checks step aside, so the same public function stays usable inside compiled code.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(*xs) -> bool:
    """True when none of `xs` is a tracer (we are not inside jit/vmap/grad)."""
    leaves = jax.tree_util.tree_leaves(xs)
    return not any(isinstance(x, jax.core.Tracer) for x in leaves)


def _describe(x) -> str:
    a = np.asarray(x)
    if a.size <= 6:
        return f"{a.tolist()!r}"
    return f"an array of shape {a.shape}"


def finite(name: str, x) -> None:
    """Raise ValueError when `x` holds NaN or inf."""
    if not is_concrete(x):
        return
    a = np.asarray(x)
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ValueError(f"{name} must be finite, got {bad} NaN/inf value(s) in {_describe(a)}")


def positive(name: str, x) -> None:
    """Raise ValueError unless every entry of `x` is > 0 (and finite)."""
    if not is_concrete(x):
        return
    a = np.asarray(x)
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"{name} must be > 0 and finite, got {_describe(a)}")


def ndim_at_least(name: str, x, n: int, what: str) -> None:
    if np.ndim(x) < n:
        raise ValueError(f"{name} must have shape {what}, got shape {np.shape(x)}")


def last_dim(name: str, x, d: int, what: str) -> None:
    if np.shape(x)[-1:] != (d,):
        raise ValueError(f"{name} must have shape {what} with D={d}, got shape {np.shape(x)}")


def probabilities(name: str, p, *, atol: float = 1e-5) -> None:
    """Raise unless `p` is non-negative and sums to 1 along its last axis."""
    if not is_concrete(p):
        return
    a = np.asarray(p, dtype=np.float64)
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError(f"{name} must be non-negative and finite, got {_describe(a)}")
    s = a.sum(axis=-1)
    if not np.allclose(s, 1.0, atol=atol, rtol=0):
        raise ValueError(f"{name} must sum to 1, got sum {_describe(s)} for {name}={_describe(a)}")


def spd(name: str, cov) -> None:
    """Raise unless `cov` (..., D, D) is symmetric positive definite."""
    if not is_concrete(cov):
        return
    a = np.asarray(cov, dtype=np.float64)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{name} must be a square matrix (..., D, D), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got NaN/inf in an array of shape {a.shape}")
    scale = np.maximum(np.abs(a).max(axis=(-2, -1), keepdims=True), 1e-300)
    if not np.all(np.abs(a - np.swapaxes(a, -1, -2)) <= 1e-5 * scale):
        raise ValueError(f"{name} must be symmetric, got {_describe(a)}")
    if np.any(np.linalg.eigvalsh(a) <= 0):
        raise ValueError(
            f"{name} must be positive definite, got eigenvalues {_describe(np.linalg.eigvalsh(a))}"
        )


def as_float(*xs) -> list[jax.Array]:
    """Convert array-likes (lists included) to one common floating dtype.

    float32 unless jax_enable_x64 is on and an input is float64.
    """
    xs = [x if isinstance(x, (jax.Array, np.ndarray, np.generic, float, int)) else np.asarray(x)
          for x in xs]
    dtype = jnp.result_type(*xs, float)
    return [jnp.asarray(x, dtype) for x in xs]
