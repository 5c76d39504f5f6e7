"""Data parallelism the JAX way: a 1-D device mesh with axis 'data', the batch sharded along it,
params and optimizer state replicated. XLA (GSPMD) inserts the gradient all-reduce, so the
sharded train step computes what the single-device step computes; one device is the same code
with a mesh of size 1.

Multi-host (a GPU cluster or a TPU pod): call `jax.distributed.initialize()` in every process
first (`jaxgen run NAME --distributed`); `jax.devices()` is then every host's devices, each
process loads the same data and builds the same batches, and `shard_batch` hands each device
its slice.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

_DEVICES: contextvars.ContextVar[int] = contextvars.ContextVar("devices", default=1)


@contextlib.contextmanager
def use_devices(n: int):
    """Within the block, `train` uses `n` devices unless told otherwise (`jaxgen run
    --devices N`): experiments need not pass a device count through."""
    make_mesh(n)  # validate now, with the argument's name
    token = _DEVICES.set(n)
    try:
        yield
    finally:
        _DEVICES.reset(token)


def default_devices() -> int:
    return _DEVICES.get()


def make_mesh(devices: int | None = None) -> Mesh:
    """A mesh over the first `devices` devices (None: all), one axis named 'data'."""
    available = jax.devices()
    n = len(available) if devices is None else devices
    if not isinstance(n, (int, np.integer)) or not 1 <= n <= len(available):
        raise ValueError(f"devices must be an int in 1..{len(available)} (the devices JAX "
                         f"sees), got {devices}")
    return Mesh(np.asarray(available[:n]), ("data",))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Every leaf copied to every device of the mesh."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(batch: tuple[np.ndarray, ...], mesh: Mesh) -> tuple[jax.Array, ...]:
    """Host arrays (B, ...) split along B over the 'data' axis (B divisible by the mesh size).

    Built with `make_array_from_callback`, so on several hosts each process supplies only the
    slices of its own devices (every process holds the same global batch)."""
    sharding = NamedSharding(mesh, PartitionSpec("data"))

    def put(a):
        a = np.asarray(a)
        if a.shape[0] % mesh.size:
            raise ValueError(f"batch size {a.shape[0]} must be divisible by the number of "
                             f"devices {mesh.size}")
        return jax.make_array_from_callback(a.shape, sharding, lambda idx: a[idx])

    return tuple(put(a) for a in batch)
