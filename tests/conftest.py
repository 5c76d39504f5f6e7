import contextlib
import os

# four simulated CPU devices for the data-parallel tests (set before JAX starts its backend);
# computations not placed on a mesh still run on device 0 alone
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_force_host_platform_device_count=4").strip()

import jax
import pytest


@pytest.fixture
def x64():
    """Run a test with jax_enable_x64 on (tight comparisons against float64 oracles)."""
    ctx = getattr(jax, "enable_x64", None)
    if ctx is None:  # older jax
        from jax.experimental import enable_x64 as ctx
    with ctx(True) if ctx is not None else contextlib.nullcontext():
        yield
