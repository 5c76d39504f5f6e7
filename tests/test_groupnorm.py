"""jaxgen's GroupNorm is flax's GroupNorm, summed in two stages: the same parameters, values and
gradients (to float32 summation-order rounding)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.diffusion.groupnorm import GroupNorm


@pytest.mark.parametrize("shape, groups", [((3, 28, 28, 32), 8), ((2, 7, 7, 64), 8),
                                           ((4, 5, 6), 3), ((2, 14, 14, 4), 2)])
def test_values_and_gradients_equal_flax_groupnorm(shape, groups):
    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    # an offset and a spread per channel, so mean and variance both matter
    c = shape[-1]
    x = 3.0 * jax.random.normal(k1, shape) * jax.random.uniform(k2, (c,), minval=0.2) + 1.5
    ours, theirs = GroupNorm(num_groups=groups), nn.GroupNorm(num_groups=groups)
    params = theirs.init(k3, x)
    assert jax.tree_util.tree_map(jnp.shape, ours.init(k3, x)) == \
        jax.tree_util.tree_map(jnp.shape, params)
    params = jax.tree_util.tree_map(  # scale and bias away from their (1, 0) initial values
        lambda p: p + jax.random.normal(k4, p.shape), params)
    w = jax.random.normal(k4, shape)

    def loss(module):
        return lambda p, x: jnp.sum(jnp.tanh(module.apply(p, x)) * w)

    # the two differ only in the order of the float32 sums over up to 25,088 terms, whose
    # rounding is ~sqrt(n) 2^-24 ~ 1e-5 relative: compare to 1e-4 of the largest value
    y = theirs.apply(params, x)
    np.testing.assert_allclose(ours.apply(params, x), y, atol=1e-4 * float(jnp.abs(y).max()))
    g_ours = jax.grad(loss(ours), argnums=(0, 1))(params, x)
    g_theirs = jax.grad(loss(theirs), argnums=(0, 1))(params, x)
    for a, b in zip(jax.tree_util.tree_leaves(g_ours), jax.tree_util.tree_leaves(g_theirs),
                    strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4 * float(jnp.abs(b).max()))


def test_normalises_each_group_to_zero_mean_unit_variance():
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 8)) * 4.0 + 7.0
    y = GroupNorm(num_groups=4).apply({"params": {"scale": jnp.ones(8), "bias": jnp.zeros(8)}},
                                      x)
    groups = np.asarray(y).reshape(2, 36, 4, 2).transpose(0, 2, 1, 3).reshape(2, 4, -1)
    np.testing.assert_allclose(groups.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(groups.var(-1), 1.0, atol=1e-4)  # eps 1e-6 against var 16


def test_groups_that_do_not_divide_the_channels_are_an_error():
    with pytest.raises(ValueError, match="num_groups"):
        GroupNorm(num_groups=3).init(jax.random.key(0), jnp.ones((1, 4, 4, 8)))
