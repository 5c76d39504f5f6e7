import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import diffusion
from jaxgen.cli import main
from jaxgen.diffusion import ddpm, guidance, pipeline
from jaxgen.diffusion.latent import Autoencoder
from jaxgen.diffusion.noisy_classifier import NoisyClassifier
from jaxgen.diffusion.objective import drop_labels

SCHEDULE = diffusion.linear()
TINY = dict(widths=(4, 8), norm="group", time_dim=16)


@functools.cache  # one init (compiled: op by op a U-Net init takes seconds) for every test
def _cond_unet():
    net = diffusion.UNet(**TINY, num_classes=10)
    x = jax.random.normal(jax.random.key(0), (6, 28, 28, 1))
    t = jnp.array([1, 10, 100, 500, 900, 1000])
    params = jax.jit(net.init)(jax.random.key(1), x, t)["params"]
    return net, params, x, t


def test_null_label_is_the_default_and_labels_change_the_prediction():
    net, params, x, t = _cond_unet()
    apply = jax.jit(net.apply)
    none = apply({"params": params}, x, t)
    null = apply({"params": params}, x, t, jnp.full((6,), 10))
    np.testing.assert_array_equal(none, null)
    seven = apply({"params": params}, x, t, jnp.full((6,), 7))
    assert np.abs(np.asarray(seven - null)).max() > 1e-4
    n_uncond = sum(p.size for p in jax.tree_util.tree_leaves(
        jax.jit(diffusion.UNet(**TINY).init)(jax.random.key(1), x, t)["params"]))
    assert sum(p.size for p in jax.tree_util.tree_leaves(params)) == n_uncond + 11 * 16
    with pytest.raises(ValueError, match="unconditional UNet"):
        diffusion.UNet(**TINY).apply({"params": params}, x, t, jnp.zeros((6,), int))


def test_cfg_gamma_0_is_unconditional_gamma_1_conditional_in_one_forward_pass():
    net, params, x, t = _cond_unet()
    calls = []
    net_apply = jax.jit(net.apply)

    def apply(xx, tt, yy):
        calls.append(xx.shape[0])
        return net_apply({"params": params}, xx, tt, yy)

    y = jnp.array([0, 1, 2, 3, 4, 5])
    cond, uncond = apply(x, t, y), apply(x, t, jnp.full((6,), 10))
    calls.clear()
    for gamma, expect in ((0.0, uncond), (1.0, cond), (3.0, uncond + 3 * (cond - uncond))):
        got = guidance.cfg_eps(apply, y, 10, jnp.float32(gamma))(x, t)
        np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-5)
    assert calls == [12, 12, 12]  # one doubled batch per guided prediction


def test_cfg_in_a_limited_interval_guides_inside_and_conditions_outside():
    def apply(x, t, y):  # a toy network whose outputs tell labels and timesteps apart
        return x * (y[:, None] + 1.0) + t[:, None]

    x, y = jnp.ones((3, 2)), jnp.array([0, 4, 7])
    eps_fn = jax.jit(guidance.cfg_eps(apply, y, 10, 3.0, active=lambda t: t > 5))
    cond, uncond = apply(x, jnp.full(3, 9), y), apply(x, jnp.full(3, 9), jnp.full(3, 10))
    np.testing.assert_allclose(eps_fn(x, jnp.full(3, 9)), uncond + 3 * (cond - uncond))
    np.testing.assert_allclose(eps_fn(x, jnp.full(3, 2)), apply(x, jnp.full(3, 2), y))
    # sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) in (lo, hi], against NumPy
    ab = np.asarray(SCHEDULE.alpha_bars, np.float64)
    sigma = np.sqrt((1 - ab) / ab)
    active = jax.jit(jax.vmap(guidance.sigma_interval(SCHEDULE.alpha_bars, 0.3, 5.0)))
    got = np.asarray(active(jnp.arange(1001)))
    want = (sigma > 0.3) & (sigma <= 5.0)
    near = np.abs(sigma - 0.3) < 1e-4 * 0.3  # float32 may round a boundary either way
    assert 0 < want.sum() < 1000 and (got == want)[~near].all()


def test_generate_with_a_guidance_interval(tmp_path):
    model = _saved_model(tmp_path)
    run = functools.partial(pipeline.generate, model, 4, [1, 2, 3, 4], steps=3,
                            sampler="dpm++", key=jax.random.key(2))
    guided, conditional = run(gamma=3.0), run(gamma=1.0)
    # an interval holding every noise level is plain guidance; one holding none is gamma 1
    np.testing.assert_allclose(run(gamma=3.0, guidance_interval=(0.0, np.inf)), guided,
                               atol=1e-5)
    np.testing.assert_allclose(run(gamma=3.0, guidance_interval=(0.0, 1e-6)), conditional,
                               atol=1e-5)
    assert np.abs(guided - conditional).max() > 1e-3  # so the two checks above can fail
    partial = run(gamma=3.0, guidance_interval=(0.5, 20.0))
    assert np.abs(partial - guided).max() > 1e-4 and np.abs(partial - conditional).max() > 1e-4
    for bad in ((2.0, 1.0), (-1.0, 1.0), (0.0, np.nan), (1.0,)):
        with pytest.raises(ValueError, match="guidance_interval must be"):
            run(gamma=3.0, guidance_interval=bad)
    unconditional = pipeline.DiffusionModel(diffusion.UNet(**TINY), None, (28, 28, 1))
    with pytest.raises(ValueError, match="guidance_interval: limits classifier-free"):
        pipeline.check_request(unconditional, None, 1.0, (0.3, 5.0))


def test_label_dropout_per_example_and_per_batch():
    y = jnp.arange(100_000) % 10
    dropped = drop_labels(y, 0.1, 10, key=jax.random.key(0))
    frac = float(jnp.mean(dropped == 10))
    assert abs(frac - 0.1) < 0.005  # binomial standard error ~0.001
    np.testing.assert_array_equal(np.asarray(dropped)[np.asarray(dropped) != 10],
                                  np.asarray(y)[np.asarray(dropped) != 10])
    whole = [bool(jnp.all(drop_labels(y[:64], 0.5, 10, False, key=jax.random.key(i)) == 10))
             or bool(jnp.all(drop_labels(y[:64], 0.5, 10, False, key=jax.random.key(i)) == y[:64]))
             for i in range(20)]
    assert all(whole)
    with pytest.raises(ValueError, match="p_uncond"):
        drop_labels(y, 1.5, 10, key=jax.random.key(0))


def test_classifier_guided_step_raises_log_p_of_the_label():
    clf = NoisyClassifier(widths=(4, 8), time_dim=16)
    x = jax.random.normal(jax.random.key(0), (4, 28, 28, 1))
    t = 400
    tb = jnp.full((4,), t)
    params = jax.jit(clf.init)(jax.random.key(1), x, tb)["params"]
    clf_apply = jax.jit(clf.apply)
    logits_fn = lambda xx, tt: clf_apply({"params": params}, xx, tt)  # noqa: E731
    y = jnp.array([3, 3, 8, 1])
    # the per-example gradient is the gradient of each example's own log p(y | x)
    grad = guidance.classifier_grad(logits_fn, y)(x, tb)
    one = jax.grad(lambda v: jax.nn.log_softmax(logits_fn(v, tb[:1]))[0, 3])(x[:1])
    np.testing.assert_allclose(grad[:1], one, rtol=1e-4, atol=1e-7)

    def log_p(v):
        return np.asarray(jnp.take_along_axis(jax.nn.log_softmax(logits_fn(v, tb)),
                                              y[:, None], 1))[:, 0]

    eps_fn = lambda xx, tt: 0.1 * xx  # noqa: E731
    key = jax.random.key(2)
    plain = ddpm.p_sample(eps_fn, x, t, SCHEDULE, key=key)
    guided = ddpm.p_sample(eps_fn, x, t, SCHEDULE,
                           guide=guidance.classifier_guide(logits_fn, y, 50.0), key=key)
    assert np.all(log_p(guided) > log_p(plain))
    var = float((1 - SCHEDULE.alpha_bars[t - 1]) / (1 - SCHEDULE.alpha_bars[t])
                * SCHEDULE.betas[t])
    np.testing.assert_allclose(guided - plain, var * 50.0 * grad, rtol=1e-3, atol=1e-7)


def test_latent_autoencoder_round_trips_shapes():
    ae = Autoencoder(latent_channels=3)
    x = jax.random.uniform(jax.random.key(0), (5, 28, 28, 1))
    params = jax.jit(ae.init)(jax.random.key(1), x)["params"]
    z = ae.apply({"params": params}, x, method=Autoencoder.encode)
    assert z.shape == (5, 8, 8, 3)
    out = ae.apply({"params": params}, z, method=Autoencoder.decode)
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1


def _saved_model(tmp_path, p_uncond=0.1):
    net, params, _, _ = _cond_unet()
    model = pipeline.DiffusionModel(net, {"unet": {"params": params}}, (28, 28, 1),
                                    T=1000, p_uncond=p_uncond)
    pipeline.save(tmp_path, model)
    return model


def test_a_saved_model_keeps_its_schedule_and_samples_with_it(tmp_path):
    # trains nothing: the round trip of what sampling must know besides the weights
    net, params, _, _ = _cond_unet()
    model = pipeline.DiffusionModel(net, {"unet": {"params": params}}, (28, 28, 1), T=400,
                                    p_uncond=0.1, schedule="cosine")
    pipeline.save(tmp_path, model)
    loaded = pipeline.load(tmp_path)
    assert (loaded.schedule, loaded.T, loaded.prediction) == ("cosine", 400, "eps")
    np.testing.assert_array_equal(loaded.noise_schedule.alpha_bars,
                                  diffusion.cosine(400).alpha_bars)
    run = functools.partial(pipeline.generate, key=jax.random.key(0), n=2, labels=[3, 4],
                            steps=3)
    as_cosine = run(loaded)
    np.testing.assert_array_equal(as_cosine, run(model))
    assert not np.array_equal(as_cosine, run(dataclasses.replace(loaded, schedule="linear")))
    with pytest.raises(ValueError, match="schedule must be one of"):
        dataclasses.replace(model, schedule="sigmoid")
    with pytest.raises(ValueError, match="prediction must be one of"):
        dataclasses.replace(model, prediction="score")


def test_classifier_guidance_at_scale_0_skips_the_gradient():
    net = diffusion.UNet(**TINY)
    params = jax.jit(net.init)(jax.random.key(1), jnp.zeros((1, 28, 28, 1)),
                               jnp.ones((1,), jnp.int32))["params"]
    model = pipeline.DiffusionModel(net, {"unet": {"params": params}}, (28, 28, 1))
    nan_grad = lambda y: lambda x, t: jnp.full_like(x, jnp.nan)  # noqa: E731
    run = functools.partial(pipeline.generate, model, 3, [1, 2, 3], steps=3, key=jax.random.key(0),
                            guide_fn=nan_grad)
    plain = pipeline.generate(model, 3, steps=3, key=jax.random.key(0))
    np.testing.assert_array_equal(run(guide_scale=0.0), plain)  # 0 * NaN would poison it
    assert np.isnan(run(guide_scale=1.0)).all()  # at s != 0 the gradient is used


def test_pipeline_save_load_and_sample(tmp_path):
    model = _saved_model(tmp_path)
    loaded = pipeline.load(tmp_path)
    assert loaded.unet == model.unet and loaded.p_uncond == 0.1
    a = pipeline.generate(loaded, 5, [7] * 5, gamma=3.0, steps=4,
                          batch_size=2, key=jax.random.key(3))
    b = pipeline.generate(model, 5, [7] * 5, gamma=3.0, steps=4,
                          batch_size=2, key=jax.random.key(3))
    assert a.shape == (5, 28, 28, 1) and a.min() >= 0 and a.max() <= 1
    np.testing.assert_allclose(a, b, atol=1e-6)  # same params, same key: same samples
    with pytest.raises(ValueError, match=r"label must be in 0\.\.9"):
        pipeline.generate(model, 2, [3, 10], key=jax.random.key(0))
    with pytest.raises(ValueError, match="guidance must be"):
        pipeline.generate(model, 2, [3, 1], gamma=-1.0, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"model\.json"):
        pipeline.load(tmp_path / "nowhere")


@pytest.mark.parametrize("args,msg", [
    (["--label", "12"], "--label must be in 0..9, got 12"),
    (["--guidance", "-2"], "--guidance must be a finite number >= 0"),
    (["--steps", "0"], "--steps must be in 1..1000"),
    (["--n", "0"], "--n must be >= 1"),
    (["--sampler", "heun"], "invalid choice: 'heun'"),
    (["--sampler", "dpm++", "--steps", "1001"], "--steps must be in 1..1000"),
    (["--guidance-interval", "5,1"], "--guidance-interval: must be (sigma_lo, sigma_hi)"),
    (["--guidance-interval", "0.3"], "--guidance-interval: expected LO,HI"),
])
def test_sample_cli_rejects_bad_requests_in_one_line(tmp_path, capsys, args, msg):
    _saved_model(tmp_path)
    assert main(["sample", str(tmp_path), *args, "--out", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0]
    assert not (tmp_path / "g.png").exists()


def test_sample_cli_refuses_guidance_for_a_model_without_label_dropout(tmp_path, capsys):
    _saved_model(tmp_path, p_uncond=0.0)
    assert main(["sample", str(tmp_path), "--guidance", "3"]) == 2
    assert "trained without label dropout" in capsys.readouterr().err
    assert main(["sample", str(tmp_path), "--guidance-interval", "0.3,5"]) == 2
    assert "--guidance-interval: limits classifier-free" in capsys.readouterr().err


def test_sample_cli_writes_a_grid(tmp_path):
    _saved_model(tmp_path)
    out = tmp_path / "grid.png"
    assert main(["sample", str(tmp_path), "--label", "7", "--guidance", "3", "--n", "4",
                 "--steps", "3", "--guidance-interval", "0.3,inf", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_guidance_rows_per_interval_and_scale(tmp_path, monkeypatch, capsys):
    _saved_model(tmp_path / "model")
    for var, value in (("JAXGEN_GUIDANCE_MODEL", str(tmp_path / "model")),
                       ("JAXGEN_GUIDANCE_INTERVALS", "none;0,1e-6"),
                       ("JAXGEN_GUIDANCE_GAMMAS", "1,3"), ("JAXGEN_GUIDANCE_SAMPLER", "dpm++-2")):
        monkeypatch.setenv(var, value)
    assert main(["bench", "guidance", "--quick", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "guidance-quick.json").read_text())["rows"]
    assert [(r["interval"], r["gamma"]) for r in rows] == [
        ("none", 1.0), ("none", 3.0), ("(0, 1e-06]", 1.0), ("(0, 1e-06]", 3.0)]
    # gamma 3 guided nowhere is gamma 1: the same samples, so the same numbers
    assert rows[3]["fid"] == pytest.approx(rows[2]["fid"], rel=1e-3)
    assert rows[1]["fid"] != pytest.approx(rows[2]["fid"], rel=1e-3)
    assert all(r["floor_fid"] > 0 and 0 <= r["accuracy"] <= 1 for r in rows)
    # the time grid: one row at 4 steps on the uniform and on the EDM grid differs
    monkeypatch.setenv("JAXGEN_GUIDANCE_INTERVALS", "none")
    monkeypatch.setenv("JAXGEN_GUIDANCE_GAMMAS", "1")
    monkeypatch.setenv("JAXGEN_GUIDANCE_SAMPLER", "dpm++-4")
    fids = {}
    for spacing in ("uniform", "karras"):
        monkeypatch.setenv("JAXGEN_GUIDANCE_SPACING", spacing)
        assert main(["bench", "guidance", "--quick", "--out", str(tmp_path)]) == 0
        result = json.loads((tmp_path / "guidance-quick.json").read_text())
        assert result["spacing"] == spacing
        fids[spacing] = result["rows"][0]["fid"]
    assert fids["uniform"] != pytest.approx(fids["karras"], rel=1e-3)


TINY_RUN = ["widths=4,8", "base=4", "mults=1,2", "epochs=1", "batch_size=32", "ema_decay=0.9",
            "n_samples=20", "steps=2", "train_size=64"]


@pytest.mark.parametrize("name,extra,sweep_key", [
    ("conditional", [], None),
    ("cfg", ["p_uncond=0.1"], "by_gamma"),
    ("classifier-guidance", ["classifier_epochs=1", "classifier_batch_size=32",
                             "classifier_widths=4,8"], "by_scale"),
    ("latent-diffusion", ["p_uncond=0.1", "ae_epochs=1", "latent_channels=2"], "by_gamma"),
])
def test_guidance_experiments_end_to_end_in_tiny_configurations(name, extra, sweep_key, tmp_path):
    sets = [a for kv in [*TINY_RUN, *extra] for a in ("--set", kv)]
    assert main(["run", name, "--quick", *sets, "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert 0 <= m["label_accuracy"] <= 1 and m["fid"] > 0
    assert abs(sum(m["class_shares"]) - 1) < 1e-6
    if sweep_key is None:  # one model, no guidance sweep
        assert "by_gamma" not in m and "by_scale" not in m
    else:
        sweep = m[sweep_key]
        scales = m["config"]["gammas" if sweep_key == "by_gamma" else "scales"]
        assert set(sweep) == {f"{g:g}" for g in scales} and len(sweep) >= 3
        for row in sweep.values():
            assert 0 <= row["label_accuracy"] <= 1 and row["fid"] > 0
    for fig in m["figures"]:
        assert (tmp_path / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # every run leaves a model `jaxgen sample` can load
    assert main(["sample", str(tmp_path), "--n", "2", "--steps", "2",
                 "--out", str(tmp_path / "s.png")]) == 0


def test_training_data_subset_holds_every_digit():
    from jaxgen.experiments._diffusion import DiffusionConfig, training_data

    data, x, y = training_data(DiffusionConfig(train_size=50))
    assert x.shape == (50, 28, 28, 1) and y.shape == (50,)
    assert set(np.asarray(y).tolist()) == set(range(10))  # a leading slice was only zeros
    np.testing.assert_array_equal(x[0], data.images[0])
    assert training_data(DiffusionConfig())[1].shape[0] == len(data.images)
    with pytest.raises(ValueError, match="train_size must be None"):
        training_data(DiffusionConfig(train_size=0))


def test_sweep_limits_only_the_guided_scales_to_the_interval(monkeypatch):
    from jaxgen.experiments import _diffusion as common

    asked = {}

    def fake_generate(model, n, labels, *, gamma, guidance_interval, **kw):
        asked[gamma] = guidance_interval
        return np.zeros((n, 28, 28, 1), np.float32)

    monkeypatch.setattr(pipeline, "generate", fake_generate)
    monkeypatch.setattr(common, "judge", lambda ev, images, labels: {"fid": 1.0})
    results, _ = common.sweep(None, jax.random.key(0), (0.0, 1.0, 3.0), 10, None, steps=2,
                              guidance_interval=(2.0, 5.42))
    # gamma 0 stays unconditional and 1 conditional at every step; only 3 is limited
    assert asked == {0.0: None, 1.0: None, 3.0: (2.0, 5.42)}
    assert set(results) == {"0", "1", "3"}
