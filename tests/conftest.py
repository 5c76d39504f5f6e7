import contextlib

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
