"""Shuffled minibatches driven by an explicit `jax.random` key, and a jitted function mapped
over a data set in fixed-size batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np


def batch_indices(n: int, batch_size: int, *, key: jax.Array) -> np.ndarray:
    """One epoch's shuffled indices, shape (n // batch_size, batch_size).

    The last partial batch is dropped, so every step sees the same shapes (one compilation).
    """
    if batch_size < 1 or batch_size > n:
        raise ValueError(f"batch_size must be in [1, {n}] for {n} examples, got {batch_size}")
    steps = n // batch_size
    perm = np.asarray(jax.random.permutation(key, n))
    return perm[: steps * batch_size].reshape(steps, batch_size)


def batches(arrays: tuple[np.ndarray, ...], batch_size: int, start: int = 0, *,
            key: jax.Array) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield one epoch of shuffled batches of `arrays` (all with the same leading N).

    `start` skips the first batches (to resume mid-epoch exactly).
    """
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"arrays must share their leading dimension, got "
                         f"{[len(a) for a in arrays]}")
    for idx in batch_indices(n, batch_size, key=key)[start:]:
        yield tuple(a[idx] for a in arrays)


def map_batches(fn: Callable, arrays: tuple[np.ndarray, ...], batch_size: int = 1000) -> Any:
    """Apply a jitted per-batch `fn(*batch) -> pytree of (B, ...)` over all N examples, in order.

    The last batch is padded to full size (one compilation) and the padding dropped.
    """
    n = len(arrays[0])
    outs = []
    for lo in range(0, n, batch_size):
        batch = [a[lo:lo + batch_size] for a in arrays]
        short = batch_size - len(batch[0])
        if short:
            batch = [np.concatenate([b, np.repeat(b[-1:], short, axis=0)]) for b in batch]
        out = jax.device_get(fn(*batch))
        outs.append(jax.tree_util.tree_map(lambda o, m=batch_size - short: o[:m], out))
    return jax.tree_util.tree_map(lambda *o: np.concatenate(o), *outs)


def per_example(fn, *, key):
    """Batch a stochastic `fn(key, x (1, D)) -> (1,)` over examples with keys fold_in(key, i),
    so every example's estimate is reproducible whatever the batching."""
    return jax.jit(jax.vmap(lambda x, i: fn(jax.random.fold_in(key, i), x[None])[0]))
