"""Shuffled minibatches driven by an explicit `jax.random` key."""

from __future__ import annotations

from collections.abc import Iterator

import jax
import numpy as np


def batch_indices(key: jax.Array, n: int, batch_size: int) -> np.ndarray:
    """One epoch's shuffled indices, shape (n // batch_size, batch_size).

    The last partial batch is dropped, so every step sees the same shapes (one compilation).
    """
    if batch_size < 1 or batch_size > n:
        raise ValueError(f"batch_size must be in [1, {n}] for {n} examples, got {batch_size}")
    steps = n // batch_size
    perm = np.asarray(jax.random.permutation(key, n))
    return perm[: steps * batch_size].reshape(steps, batch_size)


def batches(key: jax.Array, arrays: tuple[np.ndarray, ...], batch_size: int,
            start: int = 0) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield one epoch of shuffled batches of `arrays` (all with the same leading N).

    `start` skips the first batches (to resume mid-epoch exactly).
    """
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"arrays must share their leading dimension, got "
                         f"{[len(a) for a in arrays]}")
    for idx in batch_indices(key, n, batch_size)[start:]:
        yield tuple(a[idx] for a in arrays)
