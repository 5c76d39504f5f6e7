"""The CPU convolution path jaxgen selects (XLA:CPU without its YNNPACK convolution fusion, set
at import on jaxlib 0.10) computes the same convolution, value and gradients, as the default."""

import os
import subprocess
import sys
from importlib import metadata

import jax
import numpy as np
import pytest

import jaxgen  # noqa: F401  (sets the flag before the CPU backend starts)

SCRIPT = """
import sys, numpy as np, jax, jax.numpy as jnp
def f(w, x):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.sum(jnp.sin(y))
kw, kx = jax.random.split(jax.random.key(0))
w = jax.random.normal(kw, (3, 3, 64, 64)) / 24.0
x = jax.random.normal(kx, (16, 28, 28, 64))
grad = jax.jit(jax.grad(f, argnums=(0, 1)))
hlo = grad.lower(w, x).compile().as_text()
gw, gx = grad(w, x)
np.savez(sys.argv[1], value=jax.jit(f)(w, x), gw=gw, gx=gx, ynn=("ynn_fusion" in hlo))
"""

jaxlib_minor = tuple(int(p) for p in metadata.version("jaxlib").split(".")[:2])


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="a CPU-only code path")
@pytest.mark.skipif(jaxlib_minor != (0, 10), reason="jaxgen sets the flag only on jaxlib 0.10; "
                    "elsewhere both runs take XLA's default path, and would compare it with "
                    "itself")
def test_fast_cpu_convolution_equals_the_default_path(tmp_path):
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)  # the child imports jax only: XLA's default convolution path
    subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "default.npz")], env=env,
                   check=True, timeout=300)
    subprocess.run([sys.executable, "-c", "import jaxgen\n" + SCRIPT, str(tmp_path / "fast.npz")],
                   env=env, check=True, timeout=300)
    default, fast = np.load(tmp_path / "default.npz"), np.load(tmp_path / "fast.npz")
    assert default["ynn"] and not fast["ynn"]  # the flag took the convolutions out
    assert "ynn_fusion_type" in os.environ["XLA_FLAGS"]
    for name in ("value", "gw", "gx"):
        np.testing.assert_allclose(fast[name], default[name], rtol=1e-4,
                                   atol=1e-4 * np.abs(default[name]).max())


def test_an_explicit_xla_flag_choice_is_left_alone():
    env = dict(os.environ, XLA_FLAGS="--xla_cpu_experimental_ynn_fusion_type=default")
    code = "import os, jaxgen; print(os.environ['XLA_FLAGS'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "--xla_cpu_experimental_ynn_fusion_type=default"
