"""Test-session settings, made before JAX starts its backend.

- 8 simulated CPU devices for the data-parallel tests (2, 4 and 8 of them: different reduction
  trees); computations not placed on a mesh still run on device 0 alone.
- XLA:CPU's LLVM backend at optimisation level 0: the suite's programs are tiny and most of its
  time was compilation (2.3x less wall time measured). HLO-level optimisation (fusion, layout)
  is unchanged, and without fast-math LLVM may not reorder float arithmetic at any level, so
  values are the same; dots and convolutions run in XLA's precompiled kernels either way.
  `JAXGEN_TEST_XLA_OPT=default` keeps XLA's default.
- JAX's persistent compilation cache in a folder outside the clone (`JAXGEN_TEST_CACHE`,
  default `~/.cache/jaxgen/pytest-xla`; `off` disables it): a second run of the suite skips
  the compilations of the first.
"""

import contextlib
import os
from pathlib import Path

_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    _flags += " --xla_force_host_platform_device_count=8"
if (os.environ.get("JAXGEN_TEST_XLA_OPT") != "default"
        and "xla_backend_optimization_level" not in _flags):
    _flags += " --xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = _flags.strip()

import jax  # noqa: E402
import pytest  # noqa: E402

_cache = os.environ.get("JAXGEN_TEST_CACHE", str(Path("~/.cache/jaxgen/pytest-xla").expanduser()))
if _cache != "off":
    jax.config.update("jax_compilation_cache_dir", _cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


@pytest.fixture
def x64():
    """Run a test with jax_enable_x64 on (tight comparisons against float64 oracles)."""
    ctx = getattr(jax, "enable_x64", None)
    if ctx is None:  # older jax
        from jax.experimental import enable_x64 as ctx
    with ctx(True) if ctx is not None else contextlib.nullcontext():
        yield
