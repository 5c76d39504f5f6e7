"""Timing helpers shared by the benchmarks: medians after warm-up, the machine, the dot peak."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp


class BenchSettingError(ValueError):
    """A benchmark setting read from the environment is malformed (`jaxgen bench` prints it
    as one line and exits 2)."""


def env_int(name: str, default: int, minimum: int = 1) -> int:
    """The integer environment variable `name` (`default` when unset or empty), at least
    `minimum`; a BenchSettingError naming the variable otherwise."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise BenchSettingError(f"{name}: expected an int >= {minimum}, got {text!r}")
    return value


def block(x):
    """Wait for every array in a pytree (JAX dispatches asynchronously)."""
    return jax.block_until_ready(x)


def median_seconds(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time of `fn()` over `repeats` runs after `warmup` untimed runs."""
    for _ in range(warmup):
        block(fn())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def first_call_seconds(fn: Callable[[], object]) -> float:
    """Wall time of one call (for a jitted function's first call: trace + compile + run)."""
    t = time.perf_counter()
    block(fn())
    return time.perf_counter() - t


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "jax": jax.__version__, "backend": jax.default_backend(),
            "devices": [d.device_kind for d in jax.devices()]}


def dot_peak_gflops(n: int = 2048) -> float:
    """Measured float32 matmul throughput of `jnp.dot` on an n x n square, GFLOP/s."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    return 2 * n**3 / median_seconds(lambda: dot(a, a), repeats=5) / 1e9


def load_diffusion_model(where: str):
    """(model, label) from a `jaxgen run` folder holding model.json, else from the shipped
    model of that name; None when it is neither."""
    from jaxgen.diffusion import pipeline, pretrained

    if (Path(where) / "model.json").is_file():
        return pipeline.load(where), where
    if where in pretrained.available():
        return pretrained.load(where)[0], f"the shipped {where} model"
    return None
