import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgen.train as train_lib
from jaxgen.data import map_batches
from jaxgen.train import TrainingDiverged, restore, train


def regression_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.1 * rng.normal(size=n)).astype(np.float32)
    return x, y


def loss_fn(params, key, batch, model_state):
    x, y = batch
    noise = 0.01 * jax.random.normal(key, y.shape)  # uses the key, so resume must restore it
    err = x @ params["w"] + params["b"] - y + noise
    return jnp.mean(err**2), {"mae": jnp.mean(jnp.abs(err))}, model_state


PARAMS = {"w": jnp.zeros(3), "b": jnp.zeros(())}


def test_loss_falls_and_metrics_are_logged(tmp_path):
    _, hist = train(loss_fn, PARAMS, optax.adam(0.05), regression_data(),
                    key=jax.random.key(0), epochs=5, batch_size=8, workdir=tmp_path)
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4, 5]
    assert hist[-1]["loss"] < 0.2 * hist[0]["loss"]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 5 and '"mae"' in lines[0]


def test_resume_equals_uninterrupted_run(tmp_path, monkeypatch):
    data, key, opt = regression_data(), jax.random.key(1), optax.adam(0.05)
    full, _ = train(loss_fn, PARAMS, opt, data, key=key, epochs=3, batch_size=8,
                    workdir=tmp_path / "full")

    real = train_lib.make_train_step

    def interrupted(*args):  # stop mid-epoch 2, after a checkpoint at step 12
        step = real(*args)

        def wrapped(state, k, batch):
            if int(state.step) == 14:
                raise KeyboardInterrupt
            return step(state, k, batch)
        return wrapped

    monkeypatch.setattr(train_lib, "make_train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(loss_fn, PARAMS, opt, data, key=key, epochs=3, batch_size=8,
              workdir=tmp_path / "cut", checkpoint_every=6)
    monkeypatch.setattr(train_lib, "make_train_step", real)
    assert int(restore(tmp_path / "cut", train_lib.init_state(PARAMS, opt)).step) == 12
    resumed, hist = train(loss_fn, PARAMS, opt, data, key=key, epochs=3, batch_size=8,
                          workdir=tmp_path / "cut", resume=True, checkpoint_every=6)
    for a, b in zip(jax.tree_util.tree_leaves(full.params),
                    jax.tree_util.tree_leaves(resumed.params),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    assert [h["epoch"] for h in hist] == [1, 2, 3]


def test_nan_stops_training_and_keeps_last_good_checkpoint(tmp_path):
    def diverging(params, key, batch, model_state):
        w = params["w"]  # plain SGD with lr 1 walks w up by 1 per step; NaN once w > 5.5
        return -w + jnp.where(w > 5.5, jnp.nan, 0.0), {}, model_state

    data = (np.zeros((40, 1), np.float32),)
    with pytest.raises(TrainingDiverged, match="last good checkpoint: step 5"):
        train(diverging, {"w": jnp.zeros(())}, optax.sgd(1.0), data, key=jax.random.key(0),
              epochs=3, batch_size=8, workdir=tmp_path, log_every=1)
    assert int(restore(tmp_path, train_lib.init_state({"w": jnp.zeros(())},
                                                      optax.sgd(1.0))).step) == 5


def test_map_batches_pads_and_trims():
    fn = jax.jit(lambda x: x * 2)
    out = map_batches(fn, (np.arange(10.0),), batch_size=4)
    np.testing.assert_array_equal(out, np.arange(10.0) * 2)


def test_model_state_and_parameter_ema():
    # constant gradient: SGD(lr=1) moves w by -1 per step; the state counts steps
    def loss(params, key, batch, model_state):
        return params["w"], {}, {"count": model_state["count"] + 1}

    data = (np.zeros((16, 1), np.float32),)
    state, _ = train(loss, {"w": jnp.zeros(())}, optax.sgd(1.0), data, key=jax.random.key(0),
                     epochs=2, batch_size=4, model_state={"count": jnp.zeros(())},
                     ema_decay=0.5)
    assert float(state.model_state["count"]) == 8 and float(state.params["w"]) == -8
    ema = 0.0
    for s in range(1, 9):
        ema = 0.5 * ema + 0.5 * (-s)
    assert float(state.ema_params["w"]) == pytest.approx(ema)


def test_config_override_parses_each_declared_type_and_names_bad_keys():
    import dataclasses

    from jaxgen import config

    @dataclasses.dataclass(frozen=True)
    class Config:
        seed: int = 0
        lr: float = 1e-3
        widths: tuple[int, ...] = (32, 64)
        train_size: int | None = None
        clip: bool = True
        norm: str = "group"

    got = config.override(Config(), ["lr=3e-4", "widths=16,32,64", "train_size=100",
                                     "clip=false", "norm=batch", "seed=7"])
    assert got == Config(7, 3e-4, (16, 32, 64), 100, False, "batch")
    assert config.override(got, ["train_size=none"]).train_size is None
    assert config.differences(config.as_dict(Config()), config.as_dict(got)) == [
        "clip", "lr", "norm", "seed", "train_size", "widths"]
    for bad, msg in [("depth=3", "--set depth: unknown key; valid keys: seed, lr, widths"),
                     ("lr=fast", "--set lr: expected float"),
                     ("clip=maybe", "--set clip: expected true or false"),
                     ("widths=1,a", "--set widths: expected int"),
                     ("seed", "--set expects key=value")]:
        with pytest.raises(config.ConfigError, match=msg):
            config.override(Config(), [bad])


def test_k_seeds_as_one_vmapped_program_equal_k_single_runs(tmp_path):
    """Replica i of a 3-replica run (own init, data order and noise) equals a single run with
    key i, to float32 tolerance (a vmapped matmul may sum in another order); and a replicated
    run resumes from its checkpoint bit-identically."""
    from jaxgen import classifier

    model = classifier.MLP(hidden=(16,))
    x = jax.random.uniform(jax.random.key(9), (96, 28, 28, 1))
    y = jax.random.randint(jax.random.key(8), (96,), 0, 10)
    loss = classifier.make_loss(model)
    opt = optax.adam(1e-2)
    keys = [jax.random.key(i) for i in range(3)]
    inits = [model.init(k, x[:1]) for k in keys]
    singles = [train(loss, p, opt, (x, y), key=k, epochs=3, batch_size=16, ema_decay=0.9)
               for p, k in zip(inits, keys, strict=True)]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *inits)
    kw = dict(key=jnp.stack(keys), epochs=3, batch_size=16, ema_decay=0.9, replicas=3)
    state, hist = train(loss, stacked, opt, (x, y), **kw)
    for i, (single, single_hist) in enumerate(singles):
        for a, b in zip(jax.tree_util.tree_leaves((single.params, single.ema_params)),
                        jax.tree_util.tree_leaves((state.params, state.ema_params)), strict=True):
            np.testing.assert_allclose(b[i], a, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose([h["loss"][i] for h in hist],
                                   [h["loss"] for h in single_hist], rtol=1e-5)
    assert not np.allclose(state.params["params"]["Dense_0"]["kernel"][0],
                           state.params["params"]["Dense_0"]["kernel"][1])  # distinct seeds
    # cut after 1 epoch, resume to 3: bit-identical to the uninterrupted replicated run
    train(loss, stacked, opt, (x, y), **{**kw, "epochs": 1}, workdir=tmp_path)
    resumed, _ = train(loss, stacked, opt, (x, y), **kw, workdir=tmp_path, resume=True)
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(resumed),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="one key per replica"):
        train(loss, stacked, opt, (x, y), key=keys[0], epochs=1, batch_size=16, replicas=3)
