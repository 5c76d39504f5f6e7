"""Data-parallel training on 4 simulated CPU devices (tests/conftest.py sets the count)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen import classifier, diffusion, parallel
from jaxgen.cli import main
from jaxgen.diffusion.objective import make_loss
from jaxgen.train import train

pytestmark = pytest.mark.skipif(jax.device_count() < 4, reason="needs 4 (simulated) devices")


def _mlp_problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, 256).astype(np.int32)
    model = classifier.MLP(hidden=(32,))
    params = model.init(jax.random.key(0), x[:1])
    return classifier.make_loss(model), params, (x, y)


def _close(a, b, rtol=1e-3, atol=1e-4):
    # float tolerance: a sharded all-reduce sums in another order; Adam's m / sqrt(v) then
    # magnifies rounding in near-zero gradients (weights here are ~0.05)
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol)


def test_four_devices_train_to_the_same_params_as_one():
    loss, params, data = _mlp_problem()
    kw = dict(key=jax.random.key(1), epochs=2, batch_size=32)
    one, h1 = train(loss, params, optax.adam(1e-2), data, devices=1, **kw)
    four, h4 = train(loss, params, optax.adam(1e-2), data, devices=4, **kw)
    _close(one.params, four.params)
    np.testing.assert_allclose(h1[-1]["loss"], h4[-1]["loss"], rtol=1e-5)
    leaf = jax.tree_util.tree_leaves(four.params)[0]
    assert len(leaf.sharding.device_set) == 4 and leaf.sharding.is_fully_replicated


def test_batchnorm_statistics_are_those_of_the_global_batch():
    net = diffusion.UNet(widths=(4, 8), time_dim=8, norm="batch")
    x = np.random.default_rng(1).uniform(size=(64, 28, 28, 1)).astype(np.float32)
    v = net.init(jax.random.key(0), x[:2], jnp.ones((2,), jnp.int32))
    loss = make_loss(net, diffusion.linear(), stateful=True)
    kw = dict(key=jax.random.key(2), epochs=1, batch_size=16, model_state={
        "batch_stats": v["batch_stats"]})
    # SGD, not Adam: a conv bias before BatchNorm has a zero gradient up to rounding, which
    # Adam would scale up to a full-size step of random sign
    one, _ = train(loss, v["params"], optax.sgd(0.1), (x,), devices=1, **kw)
    four, _ = train(loss, v["params"], optax.sgd(0.1), (x,), devices=4, **kw)
    _close((one.params, one.model_state), (four.params, four.model_state), rtol=1e-4,
           atol=1e-5)


def test_batch_not_divisible_by_devices_is_a_clear_error():
    loss, params, data = _mlp_problem()
    with pytest.raises(ValueError, match="batch_size 30 must be divisible by the number of "
                                         "devices 4"):
        train(loss, params, optax.sgd(0.1), data, key=jax.random.key(0), epochs=1,
              batch_size=30, devices=4)
    with pytest.raises(ValueError, match=r"devices must be an int in 1\.\.4"):
        parallel.make_mesh(5)
    with pytest.raises(ValueError, match="divisible"):
        parallel.shard_batch((np.zeros((6, 2)),), parallel.make_mesh(4))


def test_a_four_device_checkpoint_resumes_on_one_device(tmp_path):
    loss, params, data = _mlp_problem()
    kw = dict(key=jax.random.key(3), batch_size=32)
    train(loss, params, optax.adam(1e-2), data, epochs=1, workdir=tmp_path, devices=4, **kw)
    with parallel.use_devices(1):  # the default device count, as `jaxgen run` sets it
        resumed, hist = train(loss, params, optax.adam(1e-2), data, epochs=2, workdir=tmp_path,
                              resume=True, **kw)
    straight, _ = train(loss, params, optax.adam(1e-2), data, epochs=2, devices=1, **kw)
    assert [h["epoch"] for h in hist] == [1, 2]
    _close(resumed.params, straight.params)
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
    assert len(err) == 1 and "--devices must be 'all' or an int in 1..4" in err[0]


def test_cli_runs_an_experiment_on_all_devices(tmp_path):
    assert main(["run", "nn", "--quick", "--devices", "all", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "metrics.json").exists()
