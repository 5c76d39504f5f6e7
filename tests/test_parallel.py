"""Data-parallel training on 2, 4 and 8 simulated CPU devices (tests/conftest.py sets 8).

Two kinds of comparison, chosen by what the computation guarantees:
- the SAME device count is deterministic (same program, same reduction tree), so a resumed run
  must equal an uninterrupted one bit for bit, even under Adam;
- a DIFFERENT device count sums the gradient in another order (a per-device partial sum, then
  an all-reduce), so results agree only up to float32 rounding. Those tests use plain SGD, whose
  update is linear in the gradient: a reordering error of a few ulps in a gradient moves a
  weight by lr times that, and 16 steps accumulate it. Adam would divide by sqrt(v), which
  turns the rounding of a near-zero gradient into a full-size step of random sign, so its
  verdict would hang on the CPU's summation order.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen import classifier, diffusion, parallel
from jaxgen.cli import main
from jaxgen.diffusion.objective import make_loss
from jaxgen.train import train

pytestmark = pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (simulated) devices")

DEVICE_COUNTS = (2, 4, 8)  # different reduction trees
EPS32 = float(np.finfo(np.float32).eps)  # 2^-23, one ulp at 1.0


def _mlp_problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, 256).astype(np.int32)
    model = classifier.MLP(hidden=(32,))
    params = model.init(jax.random.key(0), x[:1])
    return classifier.make_loss(model), params, (x, y)


def _equal(a, b):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def _close_to_rounding(a, b, steps):
    """|a - b| <= steps * 8 ulp at 1.0 (weights here are <= ~1): each SGD step
    w <- w - lr * g rounds once in w and carries the reordering error of g, a few ulps of a
    gradient that lr = 0.1 scales below |w|; the allowance adds 8 ulps a step. Measured on
    2, 4 and 8 devices (AVX-512 Xeon): at most 1 ulp after 16 steps, 6e-8. A real
    fault (a gradient not all-reduced, see below) moves weights by ~1e-2."""
    atol = steps * 8 * EPS32
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=0, atol=atol)


@pytest.mark.parametrize("n", DEVICE_COUNTS)
def test_n_devices_train_to_the_same_params_as_one(n):
    loss, params, data = _mlp_problem()
    kw = dict(key=jax.random.key(1), epochs=2, batch_size=32)  # 16 steps
    one, h1 = train(loss, params, optax.sgd(0.1), data, devices=1, **kw)
    many, hn = train(loss, params, optax.sgd(0.1), data, devices=n, **kw)
    _close_to_rounding(one.params, many.params, steps=16)
    # the epoch's mean loss: 8 float32 losses, each a 32-term mean, differing by rounding
    np.testing.assert_allclose(h1[-1]["loss"], hn[-1]["loss"], rtol=64 * EPS32)
    leaf = jax.tree_util.tree_leaves(many.params)[0]
    assert len(leaf.sharding.device_set) == n and leaf.sharding.is_fully_replicated


def test_without_the_gradient_all_reduce_the_comparison_fails():
    # the tolerance above bites: training on one device's quarter of each batch (what a
    # missing all-reduce would compute) lands far outside it
    loss, params, (x, y) = _mlp_problem()
    kw = dict(key=jax.random.key(1), epochs=2, devices=1)
    one, _ = train(loss, params, optax.sgd(0.1), (x, y), batch_size=32, **kw)
    part, _ = train(loss, params, optax.sgd(0.1), (x[:64], y[:64]), batch_size=8, **kw)
    with pytest.raises(AssertionError):
        _close_to_rounding(one.params, part.params, steps=16)


@pytest.mark.parametrize("n", DEVICE_COUNTS)
def test_batchnorm_statistics_are_those_of_the_global_batch(n):
    net = diffusion.UNet(widths=(4, 8), time_dim=8, norm="batch")
    x = np.random.default_rng(1).uniform(size=(64, 28, 28, 1)).astype(np.float32)
    v = net.init(jax.random.key(0), x[:2], jnp.ones((2,), jnp.int32))
    loss = make_loss(net, diffusion.linear())
    kw = dict(key=jax.random.key(2), epochs=1, batch_size=16, model_state={
        "batch_stats": v["batch_stats"]})
    # SGD, not Adam: a conv bias before BatchNorm has a zero gradient up to rounding, which
    # Adam would scale up to a full-size step of random sign
    one, _ = train(loss, v["params"], optax.sgd(0.1), (x,), devices=1, **kw)
    many, _ = train(loss, v["params"], optax.sgd(0.1), (x,), devices=n, **kw)
    # 4 steps; the batch statistics (per-device partial means, then a cross-device mean, over
    # 16 x 28 x 28 values per channel) are reordered sums too, of values ~1: same allowance
    _close_to_rounding((one.params, one.model_state), (many.params, many.model_state),
                       steps=4)


def test_batch_not_divisible_by_devices_is_a_clear_error():
    loss, params, data = _mlp_problem()
    with pytest.raises(ValueError, match="batch_size 30 must be divisible by the number of "
                                         "devices 4"):
        train(loss, params, optax.sgd(0.1), data, key=jax.random.key(0), epochs=1,
              batch_size=30, devices=4)
    with pytest.raises(ValueError, match=rf"devices must be an int in 1\.\.{jax.device_count()}"):
        parallel.make_mesh(jax.device_count() + 1)
    with pytest.raises(ValueError, match="divisible"):
        parallel.shard_batch((np.zeros((6, 2)),), parallel.make_mesh(4))


@pytest.mark.parametrize("n", [1, 4])
def test_a_resumed_run_is_bit_identical_on_the_same_device_count(tmp_path, n):
    # Adam on purpose: the same program sums in the same order, so not one bit may differ
    loss, params, data = _mlp_problem()
    kw = dict(key=jax.random.key(3), batch_size=32, devices=n)
    train(loss, params, optax.adam(1e-2), data, epochs=1, workdir=tmp_path, **kw)
    resumed, hist = train(loss, params, optax.adam(1e-2), data, epochs=2, workdir=tmp_path,
                          resume=True, **kw)
    straight, h2 = train(loss, params, optax.adam(1e-2), data, epochs=2, **kw)
    assert [h["epoch"] for h in hist] == [1, 2]
    _equal((resumed.params, resumed.opt_state), (straight.params, straight.opt_state))
    assert [h["loss"] for h in hist] == [h["loss"] for h in h2]


@pytest.mark.parametrize("n", DEVICE_COUNTS)
def test_an_n_device_checkpoint_resumes_on_one_device(tmp_path, n):
    loss, params, data = _mlp_problem()
    kw = dict(key=jax.random.key(3), batch_size=32)
    train(loss, params, optax.sgd(0.1), data, epochs=1, workdir=tmp_path, devices=n, **kw)
    with parallel.use_devices(1):  # the default device count, as `jaxgen run` sets it
        resumed, hist = train(loss, params, optax.sgd(0.1), data, epochs=2, workdir=tmp_path,
                              resume=True, **kw)
    straight, _ = train(loss, params, optax.sgd(0.1), data, epochs=2, devices=1, **kw)
    assert [h["epoch"] for h in hist] == [1, 2]
    _close_to_rounding(resumed.params, straight.params, steps=16)
    assert len(jax.tree_util.tree_leaves(resumed.params)[0].sharding.device_set) == 1


def test_use_devices_sets_the_default_for_train():
    loss, params, data = _mlp_problem()
    with parallel.use_devices(4):
        state, _ = train(loss, params, optax.sgd(0.1), data, key=jax.random.key(0), epochs=1,
                         batch_size=64)
    assert len(jax.tree_util.tree_leaves(state.params)[0].sharding.device_set) == 4
    assert parallel.default_devices() == 1


@pytest.mark.parametrize("value", ["9", "0", "two"])
def test_cli_rejects_a_bad_device_count(value, capsys):
    assert main(["run", "mle", "--devices", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--devices must be 'all' or an int in 1..8" in err[0]


def test_cli_runs_an_experiment_on_all_devices(tmp_path):
    assert main(["run", "nn", "--quick", "--devices", "all", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "metrics.json").exists()
