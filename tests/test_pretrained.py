"""The diffusion models shipped with jaxgen: float16 storage, export from a run, the check that a
config may load one, how `run all` picks them, and the noisy classifier's accuracy per t band."""

import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import cli, diffusion
from jaxgen.config import ConfigError
from jaxgen.diffusion import noisy_classifier, pipeline, pretrained
from jaxgen.experiments import _diffusion as common
from jaxgen.io import write_json

TINY = dict(widths=(8, 16, 16), time_dim=16)


def _model(**kw):
    net = diffusion.UNet(**TINY)
    variables = jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, 28, 28, 1)),
                                  jnp.ones((1,), jnp.int32))
    return pipeline.DiffusionModel(net, {"unet": variables}, (28, 28, 1), **kw)


def test_float16_storage_halves_the_file_and_loads_as_float32_within_rounding(tmp_path):
    model = _model(schedule="cosine", prediction="v", data_range=(-1.0, 1.0))
    pipeline.save(tmp_path / "f32", model)
    pipeline.save(tmp_path / "f16", model, dtype="float16")
    size = lambda d: (tmp_path / d / "model.msgpack").stat().st_size  # noqa: E731
    assert size("f16") < 0.55 * size("f32")
    exact, rounded = pipeline.load(tmp_path / "f32"), pipeline.load(tmp_path / "f16")
    assert rounded.prediction == "v" and rounded.data_range == (-1.0, 1.0)
    for a, b in zip(jax.tree_util.tree_leaves(exact.variables),
                    jax.tree_util.tree_leaves(rounded.variables), strict=True):
        assert b.dtype == jnp.float32
        # round to nearest float16: relative error <= 2^-11 (absolute 2^-25 below 2^-14)
        np.testing.assert_allclose(b, a, rtol=2.0 ** -11, atol=2.0 ** -25)
    assert any(not np.array_equal(a, b) for a, b in zip(
        jax.tree_util.tree_leaves(exact.variables), jax.tree_util.tree_leaves(rounded.variables),
        strict=True))  # it was rounded, not stored as float32
    with pytest.raises(ValueError, match="dtype must be one of"):
        pipeline.save(tmp_path / "x", model, dtype="int8")


def test_export_writes_the_model_and_how_it_was_made(tmp_path):
    run = tmp_path / "run"
    model = _model()
    pipeline.save(run, model)
    write_json(run / "metrics.json", {
        "experiment": "ddpm", "preset": "quick", "seed": 4, "seconds": 12.5,
        "config": {"seed": 4, "lr": 0.002}, "headline": "FID 1",
        "environment": {"git_revision": "abc", "cpu": "some CPU"}})
    (run / "train").mkdir()
    (run / "train" / "metrics.jsonl").write_text(
        '{"epoch": 1, "step": 10, "loss": 0.5, "seconds": 3.0}\n'
        '{"epoch": 2, "step": 20, "loss": 0.25, "seconds": 2.0}\n')
    out = pretrained.export(run, "ddpm", tmp_path / "shipped")
    info = json.loads((out / "about.json").read_text())
    assert info["command"] == "jaxgen run ddpm --preset quick" and info["seed"] == 4
    assert info["config"] == {"seed": 4, "lr": 0.002} and info["git_revision"] == "abc"
    assert [h["loss"] for h in info["history"]] == [0.5, 0.25]
    loaded = pipeline.load(out)
    np.testing.assert_allclose(jax.tree_util.tree_leaves(loaded.variables)[0],
                               jax.tree_util.tree_leaves(model.variables)[0], rtol=2.0 ** -11,
                               atol=2.0 ** -25)
    with pytest.raises(ValueError, match="not 'cfg'"):
        pretrained.export(run, "cfg", tmp_path / "other")
    with pytest.raises(ValueError, match="name must be one of"):
        pretrained.directory("vae")


@pytest.mark.parametrize("name", ["ddpm", "conditional", "cfg", "classifier-guidance",
                                  "latent-diffusion"])
def test_each_shipped_model_loads_and_matches_its_quick_preset(name):
    module = cli._module(name)
    shipped = module.Config.shipped_model
    if shipped not in pretrained.available():
        pytest.skip(f"{shipped} is not shipped in this revision")
    _, cfg = cli.resolve_config(name, "quick", ["pretrained=true"])  # check_pretrained passes
    model, info = pretrained.load(shipped)  # both checksums verified
    assert cfg.pretrained and info["config"]["seed"] == cfg.seed
    assert (model.prediction, model.schedule) == (cfg.prediction, cfg.schedule)
    assert info["history"] and info["history"][-1]["epoch"] == cfg.epochs


def test_pretrained_refuses_a_config_it_was_not_trained_with():
    if "ddpm" not in pretrained.available():
        pytest.skip("ddpm is not shipped in this revision")
    with pytest.raises(cli.UsageError, match=r"trained with lr=0\.002, this config has lr=0\.001"):
        cli.resolve_config("ddpm", "quick", ["pretrained=true", "lr=0.001"])
    with pytest.raises(cli.UsageError, match="seed=0, this config has seed=3"):
        cli.resolve_config("ddpm", "quick", ["pretrained=true"], seed=3)
    with pytest.raises(ConfigError, match="ships no model for this experiment"):
        common.check_pretrained(types.SimpleNamespace(shipped_model=None))


def test_pretrained_reads_a_setting_the_shipped_config_predates_as_its_default(monkeypatch):
    # a model shipped before `upsample` / `lr_schedule` existed was trained with their defaults
    new = ("upsample", "lr_schedule")
    about = pretrained.about

    def older(name):
        info = about(name)
        recipe = {k: v for k, v in common.json_like(common.QUICK_UNCONDITIONAL).items()
                  if k not in new}
        info["config"] = {**{k: v for k, v in info["config"].items() if k not in new}, **recipe}
        return info

    monkeypatch.setattr(pretrained, "about", older)
    Config = cli._module("ddpm").Config
    common.check_pretrained(Config(**{**common.QUICK_UNCONDITIONAL, "upsample": "conv",
                                      "lr_schedule": "constant"}))
    with pytest.raises(ConfigError, match="with lr_schedule=constant, upsample=conv, this "
                                          "config has lr_schedule=cosine, upsample=nearest"):
        common.check_pretrained(Config(**common.QUICK_UNCONDITIONAL))


def test_run_all_loads_shipped_models_only_for_the_quick_preset_without_train():
    shipped = set(pretrained.available())
    for name in ["ddpm", "cfg", "classifier-guidance", "vae"]:
        model = getattr(cli._module(name).Config, "shipped_model", None)
        expected = ["pretrained=true"] if model in shipped else []
        assert cli._shipped(name, "quick", train=False) == expected
        assert cli._shipped(name, "quick", train=True) == []
        assert cli._shipped(name, "full", train=False) == []


def test_accuracy_by_t_band_against_a_classifier_right_only_early():
    schedule = diffusion.cosine(1000)
    x0 = jax.random.uniform(jax.random.key(0), (50, 28, 28, 1))
    y = jnp.arange(50) % 10
    # right for t <= 400, wrong after: bands of 200 are 1, 1, 0, 0, 0
    logits_fn = lambda x, t: jax.nn.one_hot(jnp.where(t <= 400, y, (y + 1) % 10), 10)  # noqa: E731
    acc = noisy_classifier.accuracy_by_t(logits_fn, x0, y, schedule, bands=5,
                                         key=jax.random.key(1))
    np.testing.assert_array_equal(acc, [1, 1, 0, 0, 0])
    with pytest.raises(ValueError, match="bands must be"):
        noisy_classifier.accuracy_by_t(logits_fn, x0, y, schedule, bands=7, key=jax.random.key(1))
    with pytest.raises(ValueError, match="x0 must be"):
        noisy_classifier.accuracy_by_t(logits_fn, x0[0], y, schedule, key=jax.random.key(1))


def test_noisy_classifier_sees_digits_in_the_guided_models_pixel_range():
    schedule = diffusion.linear(1000)  # alpha_bar_T > 0: eps can be recovered at every t
    seen = {}

    class Spy:  # records what the loss feeds the network
        def apply(self, variables, x_t, t):
            seen["x_t"], seen["t"] = x_t, t
            return jnp.zeros((x_t.shape[0], 10))

    black = jnp.zeros((4000, 2, 2, 1))  # black pixels: 0 in [0, 1], -1 in [-1, 1]
    for lo in (0.0, -1.0):
        loss = noisy_classifier.make_loss(Spy(), schedule, (lo, 1.0))
        loss(None, jax.random.key(0), (black, jnp.zeros(4000, jnp.int32)))
        ab = schedule.alpha_bars[seen["t"]][:, None, None, None]  # indexed by t in 0..T
        # x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps: with x0 = lo the recovered eps
        # has mean 0 within 5 standard errors; with the other range's x0 it does not
        for x0, right in [(lo, True), (-1.0 - lo, False)]:
            eps = (seen["x_t"] - jnp.sqrt(ab) * x0) / jnp.sqrt(1 - ab)
            assert (abs(float(eps.mean())) < 5 / np.sqrt(eps.size)) == right


@pytest.mark.parametrize("name,extra", [
    ("conditional", []), ("cfg", []), ("latent-diffusion", []),
    ("classifier-guidance", ["classifier_epochs=1", "classifier_widths=4,8"])])
def test_an_experiment_samples_and_judges_its_shipped_model(name, extra, tmp_path):
    """What `jaxgen run all` does for the diffusion rungs: load the shipped model (no
    training), sample, judge, and leave the same model for `jaxgen sample`."""
    shipped = cli._module(name).Config.shipped_model
    if shipped not in pretrained.available():
        pytest.skip(f"{shipped} is not shipped in this revision")
    sets = [a for kv in ["pretrained=true", "n_samples=20", "steps=2", *extra]
            for a in ("--set", kv)]
    assert cli.main(["run", name, "--quick", *sets, "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["pretrained"] and 0 <= m["label_accuracy"] <= 1 and m["fid"] > 0
    assert m["epoch_loss"] == [h["loss"] for h in pretrained.about(shipped)["history"]]
    assert not (tmp_path / "train").exists()  # nothing was trained
    assert pipeline.load(tmp_path).unet == pretrained.load(shipped)[0].unet


def test_sample_names_a_missing_folder_that_is_no_shipped_model(tmp_path, capsys):
    assert cli.main(["sample", str(tmp_path / "nosuch"), "--out", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such folder, and not a shipped model" in err[0]
    assert not (tmp_path / "s.png").exists()
