"""What a denoising network costs, independent of the machine: its parameter count and XLA's
count of the floating-point operations of one forward pass per image (a training step is about
3x that: the forward, the input gradient and the kernel gradient)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def size(net, shape: tuple[int, ...] = (28, 28, 1)) -> tuple[int, float]:
    """(parameters, forward GFLOP per image) of `net(x, t[, y])` on one image of `shape`.

    Parameters come from `jax.eval_shape` of `net.init` (nothing is computed); the FLOP count
    is XLA's cost analysis of the lowered forward at batch 1 (lowered, not compiled or run),
    so it is the same on every machine: a convolution counts 2 H W k^2 C_in C_out."""
    x, t = jnp.zeros((1, *shape)), jnp.ones((1,), jnp.int32)
    args = (x, t) if getattr(net, "num_classes", None) is None else (x, t, jnp.zeros((1,), int))
    variables = jax.eval_shape(net.init, jax.random.key(0), *args)
    params = sum(a.size for a in jax.tree_util.tree_leaves(variables["params"]))
    cost = jax.jit(net.apply).lower(variables, *args).cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return params, float(cost["flops"]) / 1e9
