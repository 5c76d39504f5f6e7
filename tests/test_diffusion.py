import dataclasses
import functools

import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import diffusion
from jaxgen.diffusion import ddpm

SCHEDULE = diffusion.linear()


def test_alpha_bars_match_the_book():
    ab = np.asarray(SCHEDULE.alpha_bars)
    assert ab.shape == (1001,) and ab[0] == 1.0
    np.testing.assert_allclose(ab[1], 0.9999, rtol=1e-7)
    np.testing.assert_allclose(ab[100], 0.897018, rtol=1e-5)
    np.testing.assert_allclose(ab[1000], 4.0358e-05, rtol=1e-3)
    cos = np.asarray(diffusion.cosine().alpha_bars)
    assert np.all(np.diff(cos) <= 0) and cos[-1] < 1e-4


def test_q_sample_matches_iterated_noising_in_distribution():
    # x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) eps, t steps, vs the closed form
    x0, t, n = 0.7, 300, 200_000
    key = jax.random.key(0)
    x = jnp.full((n,), x0)
    for s in range(1, t + 1):
        eps = jax.random.normal(jax.random.fold_in(key, s), (n,))
        x = jnp.sqrt(SCHEDULE.alphas[s]) * x + jnp.sqrt(SCHEDULE.betas[s]) * eps
    closed = ddpm.q_sample(jnp.full((n,), x0), jnp.full((n,), t),
                           jax.random.normal(jax.random.key(1), (n,)), SCHEDULE)
    ab = float(SCHEDULE.alpha_bars[t])
    for sample in (x, closed):  # standard errors: ~0.002 (mean), ~0.0016 (std)
        np.testing.assert_allclose(sample.mean(), np.sqrt(ab) * x0, atol=0.01)
        np.testing.assert_allclose(sample.std(), np.sqrt(1 - ab), atol=0.01)


def test_posterior_against_direct_gaussian_product():
    # q(x_{t-1}|x_t, x0) ∝ N(x_t; sqrt(a_t) x_{t-1}, b_t) N(x_{t-1}; sqrt(ab_{t-1}) x0, 1-ab_{t-1})
    x0, xt = jnp.array([0.3, -1.2]), jnp.array([0.9, 0.1])
    for t in (2, 50, 999):
        a, b = float(SCHEDULE.alphas[t]), float(SCHEDULE.betas[t])
        abp = float(SCHEDULE.alpha_bars[t - 1])
        prec = a / b + 1 / (1 - abp)
        mean = (np.sqrt(a) * np.asarray(xt) / b + np.sqrt(abp) * np.asarray(x0) / (1 - abp)) / prec
        got_mean, got_var = ddpm.posterior(x0, xt, jnp.array([t, t]), SCHEDULE)
        np.testing.assert_allclose(got_mean, mean, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(got_var[:, 0] if got_var.ndim > 1 else got_var,
                                   1 / prec, rtol=1e-4)


def toy_eps(x, t):  # a fixed, smooth "network" for sampler tests
    return 0.1 * jnp.tanh(x) * (t[:, None, None, None] / 1000.0)


def test_samplers_shapes_and_determinism():
    key = jax.random.key(0)
    shape = (3, 8, 8, 1)
    run = jax.jit(lambda k: ddpm.sample(toy_eps, shape, SCHEDULE, keep=5, key=k))
    x0, path = run(key)
    assert x0.shape == shape and path.shape == (5, *shape)
    np.testing.assert_array_equal(x0, run(key)[0])
    assert not np.array_equal(x0, run(jax.random.key(1))[0])
    d = jax.jit(lambda k: ddpm.ddim_sample(toy_eps, shape, SCHEDULE, steps=50, key=k))(key)
    assert d.shape == shape and np.all(np.isfinite(np.asarray(d)))
    with pytest.raises(ValueError, match="steps must be in"):
        ddpm.ddim_timesteps(1000, 0)


@pytest.mark.parametrize("sched", [diffusion.linear(), diffusion.cosine()],
                         ids=["linear", "cosine"])
@pytest.mark.parametrize("steps", [10, 20, 50])
def test_noise_level_grids_follow_their_definitions(sched, steps):
    """'logsnr' is even in lambda_t, 'karras' even in sigma_t^(1/7) (sigma_t = e^{-lambda_t}),
    both from min(sigma_T, 80) to sigma_1: each timestep is the one whose lambda is nearest its
    target, so the targets are met to half a timestep's lambda spacing (where the grid is not
    crowded into distinct neighbours at the low-noise end)."""
    ab = np.asarray(sched.alpha_bars, np.float64)
    lam = 0.5 * np.log(ab[1:] / (1 - ab[1:]))  # lam[t - 1]
    lo, hi = max(lam[-1], -np.log(80.0)), lam[0]
    expect = {"logsnr": np.linspace(lo, hi, steps),
              "karras": -7 * np.log(np.exp(-lo / 7) + np.linspace(0, 1, steps)
                                    * (np.exp(-hi / 7) - np.exp(-lo / 7)))}
    for spacing, targets in expect.items():
        ts = np.asarray(ddpm.timesteps(sched, steps, spacing))
        assert ts[-1] == 1 and np.all(np.diff(ts) < 0) and len(ts) == steps, spacing
        gap = np.abs(np.diff(lam))  # lambda spacing between neighbouring timesteps
        tol = 0.5 * np.maximum(gap[np.clip(ts - 2, 0, 998)], gap[np.clip(ts - 1, 0, 998)])
        free = np.diff(ts, append=0) > 1  # not pushed by the distinctness rule
        np.testing.assert_array_less(np.abs(lam[ts - 1] - targets)[free], tol[free] + 1e-6)
    assert not np.array_equal(ddpm.timesteps(sched, steps, "karras"),
                              ddpm.timesteps(sched, steps, "logsnr"))
    with pytest.raises(ValueError, match="spacing must be one of"):
        ddpm.timesteps(sched, steps, "edm")


def test_ddim_with_eta_one_and_all_steps_is_ddpm():
    key, shape = jax.random.key(3), (2, 4, 4, 1)
    a = jax.jit(lambda k: ddpm.sample(toy_eps, shape, SCHEDULE, key=k)[0])(key)
    b = jax.jit(lambda k: ddpm.ddim_sample(toy_eps, shape, SCHEDULE, steps=1000,
                                           eta=1.0, key=k))(key)
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_unet_has_the_books_parameter_count(norm):
    net = diffusion.UNet(norm=norm)
    variables = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)),
                                                jnp.ones((1,), jnp.int32)))
    n = sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(variables["params"]))
    assert n == 2_167_784


def test_sinusoidal_embedding_matches_the_books_formula():
    v = np.asarray(diffusion.sinusoidal_embedding(jnp.array([7]), 100))[0]
    i = np.arange(100)
    want = np.where(i % 2 == 0, np.sin(7 / 10000 ** (i / 100)), np.cos(7 / 10000 ** (i / 100)))
    np.testing.assert_allclose(v, want, rtol=1e-5, atol=1e-6)


def tiny_digits(n=64):
    from jaxgen.data import load_mnist
    return load_mnist("train", source="bundled").images[:n]


def test_tiny_unet_with_batchnorm_loss_falls_and_resumes_exactly(tmp_path):
    import optax

    from jaxgen.diffusion.objective import make_loss
    from jaxgen.train import train

    x = tiny_digits()
    net = diffusion.UNet(widths=(4, 8, 16))
    variables = jax.jit(net.init)(jax.random.key(0), x[:1], jnp.ones((1,), jnp.int32))
    params = variables.pop("params")
    kw = dict(key=jax.random.key(1), batch_size=16, model_state=dict(variables),
              ema_decay=0.9)
    loss, opt = make_loss(net, SCHEDULE), optax.adam(1e-2)
    full, hist = train(loss, params, opt, (x,), epochs=5, **kw)
    assert hist[-1]["loss"] < 0.6 * hist[0]["loss"]
    train(loss, params, opt, (x,), epochs=2, workdir=tmp_path, **kw)
    resumed, _ = train(loss, params, opt, (x,), epochs=5, workdir=tmp_path, resume=True, **kw)
    for a, b in zip(jax.tree_util.tree_leaves((full.params, full.model_state, full.ema_params)),
                    jax.tree_util.tree_leaves((resumed.params, resumed.model_state,
                                               resumed.ema_params)), strict=True):
        np.testing.assert_array_equal(a, b)


def test_ddpm_experiment_end_to_end_in_a_tiny_configuration(tmp_path, monkeypatch):
    """The quick recipe (ResNet U-Net, v-prediction, min-SNR, cosine, [-1, 1], EMA warm-up,
    DPM-Solver++) at toy size: trains, judges each sampler, saves a model that samples."""
    import json

    from jaxgen.cli import main

    tiny = ["base=4", "epochs=1", "batch_size=32", "n_samples=8", "train_size=128",
            "samplers=dpm++-3,ddim-2", "spacing=karras"]
    assert main(["run", "ddpm", "--quick", *[a for kv in tiny for a in ("--set", kv)],
                 "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert len(m["epoch_loss"]) == 1 and m["fid"] > 0 and m["fid_floor"] > 0
    assert m["test_bits_per_dim"] is None  # the bound is defined for [0, 1] pixels only
    assert abs(sum(m["class_shares"]) - 1) < 1e-6 and set(m["quality"]) == {"dpm++-3", "ddim-2"}
    saved = json.loads((tmp_path / "model.json").read_text())
    assert saved["unet"]["arch"] == "resunet" and saved["prediction"] == "v"
    assert saved["data_range"] == [-1.0, 1.0] and saved["schedule"] == "cosine"
    assert json.loads((tmp_path / "config.json").read_text())["config"]["spacing"] == "karras"
    assert main(["sample", str(tmp_path), "--n", "2", "--steps", "2", "--sampler", "dpm++",
                 "--spacing", "karras", "--out", str(tmp_path / "s.png")]) == 0  # it samples
    # `jaxgen bench recipes` rebuilds the model from the run's checkpoint exactly as saved
    from jaxgen.benchmarks import recipes
    from jaxgen.diffusion import pipeline

    [(step, rebuilt)] = recipes.checkpoint_models(tmp_path)
    saved_model = pipeline.load(tmp_path)
    assert step == 4 and rebuilt.unet == saved_model.unet
    for a, b in zip(jax.tree_util.tree_leaves(rebuilt.variables),
                    jax.tree_util.tree_leaves(saved_model.variables), strict=True):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setenv("JAXGEN_RECIPE_RUNS", str(tmp_path))
    [row] = recipes.run(quick=True, out=tmp_path)["rows"]
    lines = (tmp_path / "train/metrics.jsonl").read_text().splitlines()
    hist = [json.loads(line) for line in lines]
    assert row["minutes"] == pytest.approx(hist[0]["seconds"] / 60) and row["fid"] > 0
    assert (tmp_path / "recipes.png").read_bytes()[:4] == b"\x89PNG"
    for fig in m["figures"]:
        assert (tmp_path / fig).read_bytes()[:4] == b"\x89PNG"


def test_a_resunet_v_model_round_trips_and_samples_in_its_data_range(tmp_path):
    from jaxgen.diffusion import pipeline

    net = diffusion.ResUNet(base=4, mults=(1, 2), attention=(14,), num_classes=10)
    variables = jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, 28, 28, 1)),
                                  jnp.ones((1,), jnp.int32))
    variables = jax.tree_util.tree_map(lambda a: a + 0.01, variables)  # a non-zero output
    model = pipeline.DiffusionModel(net, {"unet": variables}, (28, 28, 1), T=50,
                                    p_uncond=0.1, schedule="cosine", prediction="v",
                                    data_range=(-1.0, 1.0))
    pipeline.save(tmp_path, model)
    loaded = pipeline.load(tmp_path)
    assert loaded.unet == net and loaded.prediction == "v" and loaded.data_range == (-1.0, 1.0)
    for sampler in pipeline.SAMPLERS:
        a = pipeline.generate(loaded, 3, [1, 2, 3], gamma=2.0, sampler=sampler, steps=5,
                              key=jax.random.key(1))
        b = pipeline.generate(model, 3, [1, 2, 3], gamma=2.0, sampler=sampler, steps=5,
                              key=jax.random.key(1))
        np.testing.assert_allclose(a, b, atol=1e-6)
        assert a.min() >= 0 and a.max() <= 1
    with pytest.raises(ValueError, match="sampler must be one of"):
        pipeline.generate(model, 2, sampler="heun", key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"steps must be an integer in 1\.\.50"):
        pipeline.generate(model, 2, sampler="dpm++", steps=51, key=jax.random.key(0))
    with pytest.raises(ValueError, match="prediction must be one of"):
        pipeline.DiffusionModel(net, {}, (28, 28, 1), prediction="score")


def test_cfg_at_gamma_0_is_the_unconditional_model_in_one_pass():

    net = diffusion.ResUNet(base=4, mults=(1, 2), attention=(), num_classes=10)
    variables = jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, 28, 28, 1)),
                                  jnp.ones((1,), jnp.int32))
    variables = jax.tree_util.tree_map(lambda a: a + 0.01, variables)  # a non-zero output
    from jaxgen.diffusion import guidance  # the doubled-batch rule at gamma 0: exactly uncond

    apply = lambda x, t, y: net.apply(variables, x, t, y)  # noqa: E731
    x, t = jax.random.normal(jax.random.key(1), (3, 28, 28, 1)), jnp.array([5, 20, 40])
    np.testing.assert_allclose(  # float32; a batch of 6 may sum in another order than of 3
        guidance.cfg_eps(apply, jnp.array([1, 2, 3]), 10, 0.0)(x, t),
        apply(x, t, jnp.full((3,), 10)), rtol=1e-5, atol=1e-6)
    from jaxgen.diffusion import pipeline  # generate takes that one pass: the null label's

    noisy = _perturbed(variables, jax.random.key(3))
    model = pipeline.DiffusionModel(net, {"unet": noisy}, (28, 28, 1), T=50, p_uncond=0.1,
                                    prediction="x0", data_range=(-1.0, 1.0))  # unclipped
    run = functools.partial(pipeline.generate, model, 3, sampler="dpm++", steps=4,
                            key=jax.random.key(2))
    null = run(None)
    np.testing.assert_array_equal(run([1, 2, 3], gamma=0.0), null)
    assert np.abs(run([1, 2, 3]) - null).max() > 1e-4  # the labels do matter at gamma 1
    with pytest.raises(ValueError, match="no null label"):
        pipeline.generate(dataclasses.replace(model, p_uncond=0.0), 3, key=jax.random.key(2))


def _perturbed(variables, key, scale=0.1):
    """Variables plus Gaussian noise: no zero-initialised layer hides an input's effect."""
    leaves, tree = jax.tree_util.tree_flatten(variables)
    keys = jax.random.split(key, len(leaves))
    return tree.unflatten([a + scale * jax.random.normal(k, a.shape)
                           for a, k in zip(leaves, keys, strict=True)])


@pytest.mark.parametrize("scale_shift", [False, True], ids=["bias", "adagn"])
@pytest.mark.parametrize("base", [4, 8, 16])
def test_resunet_output_depends_on_time_and_label_at_every_width(base, scale_shift):
    # GroupNorm over a single channel would cancel the per-channel time/label bias of a block
    net = diffusion.ResUNet(base=base, mults=(1, 2), attention=(), num_classes=10,
                            scale_shift=scale_shift)
    x = jax.random.normal(jax.random.key(1), (2, 28, 28, 1))
    t, y = jnp.array([5, 5]), jnp.array([1, 1])
    variables = _perturbed(net.init(jax.random.key(0), x, t, y), jax.random.key(2))
    out = net.apply(variables, x, t, y)
    assert np.abs(net.apply(variables, x, t + 400, y) - out).max() > 1e-3
    assert np.abs(net.apply(variables, x, t, y + 5) - out).max() > 1e-3


def test_resunet_scale_shift_doubles_exactly_each_blocks_embedding_projection():
    """AdaGN: each residual block's Dense(emb) gives a scale and a shift (2 x features
    outputs) instead of a bias; nothing else changes."""
    def params(**kw):
        net = diffusion.ResUNet(base=8, mults=(1, 2), attention=(7,), **kw)
        v = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 28, 28, 1)),
                           jnp.ones((1,), jnp.int32))["params"]
        return flax.traverse_util.flatten_dict(v, sep="/")

    plain, adagn = params(), params(scale_shift=True)
    assert plain.keys() == adagn.keys()
    changed = {k for k in plain if plain[k].shape != adagn[k].shape}
    blocks = {k.rsplit("/", 2)[0] for k in plain if "ResBlock" in k}
    assert changed == {f"{b}/Dense_0/{w}" for b in blocks for w in ("kernel", "bias")}
    for k in changed:
        assert adagn[k].shape[-1] == 2 * plain[k].shape[-1]


def test_resunet_upsample_nearest_drops_exactly_the_up_convs():
    x, t = jnp.zeros((2, 28, 28, 1)), jnp.ones((2,), jnp.int32)

    def n_params(**kw):
        net = diffusion.ResUNet(base=8, mults=(1, 2, 3), **kw)
        params = jax.jit(net.init)(jax.random.key(0), x, t)["params"]
        assert net.apply({"params": params}, x, t).shape == x.shape
        return sum(a.size for a in jax.tree_util.tree_leaves(params))

    # going up into 28x28 (from 16 channels) and 14x14 (from 24): a 3x3 conv c -> c each
    up_convs = sum(9 * c * c + c for c in (16, 24))
    assert n_params(upsample="conv") - n_params(upsample="nearest") == up_convs
    with pytest.raises(ValueError, match="upsample must be one of"):
        n_params(upsample="bilinear")


@pytest.mark.parametrize("kw", [dict(base=32, mults=(1, 2, 2), attention=(7,)),
                                dict(base=8, mults=(1, 2), depth=2, attention=(14, 7),
                                     upsample="nearest"),
                                dict(base=8, mults=(1, 2), upsample="nearest",
                                     scale_shift=True)])
def test_the_pytorch_twin_of_the_resunet_has_its_parameters_and_shapes(kw):
    torch = pytest.importorskip("torch")  # an optional extra: the benchmark's eager baseline
    from jaxgen.benchmarks.torch_resunet import res_unet

    x, t = jnp.zeros((2, 28, 28, 1)), jnp.ones((2,), jnp.int32)
    params = jax.jit(diffusion.ResUNet(**kw).init)(jax.random.key(0), x, t)["params"]
    twin = res_unet(**kw)
    assert (sum(p.numel() for p in twin.parameters())
            == sum(a.size for a in jax.tree_util.tree_leaves(params)))
    out = twin(torch.zeros(2, 1, 28, 28), torch.ones(2, dtype=torch.long))
    assert tuple(out.shape) == (2, 1, 28, 28)


def test_learning_rate_warms_up_then_follows_a_cosine_to_zero():
    from jaxgen.diffusion.training import learning_rate

    rate = learning_rate(2e-3, warmup=100, schedule="cosine", total_steps=1100)
    steps = np.arange(1101)
    lr = np.array([rate(s) for s in steps])
    np.testing.assert_allclose(lr[:101], 2e-3 * steps[:101] / 100, rtol=1e-5, atol=1e-9)  # float32
    expected = 2e-3 * (1 + np.cos(np.pi * (steps[100:] - 100) / 1000)) / 2  # closed form
    np.testing.assert_allclose(lr[100:], expected, rtol=1e-5, atol=1e-9)
    assert lr[600] == pytest.approx(1e-3) and lr[-1] == pytest.approx(0.0, abs=1e-12)
    constant = learning_rate(2e-3, warmup=100)
    assert constant(50) == pytest.approx(1e-3) and constant(5000) == pytest.approx(2e-3)
    assert learning_rate(2e-3) == 2e-3
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        learning_rate(2e-3, schedule="step")
    with pytest.raises(ValueError, match="needs total_steps >= 1"):
        learning_rate(2e-3, warmup=100, schedule="cosine")
    short = learning_rate(2e-3, warmup=100, schedule="cosine", total_steps=2)  # ends in warm-up
    assert short(0) == 0.0 and short(1) == pytest.approx(2e-5, rel=1e-5)  # float32


def test_cli_samplers_are_the_pipelines():
    from jaxgen import cli
    from jaxgen.diffusion import pipeline

    assert cli.SAMPLERS == pipeline.SAMPLERS
    assert cli.SPACINGS == ddpm.SPACINGS


@pytest.mark.parametrize("clip", [None, (0.0, 1.0)])
def test_samplers_recover_a_point_mass_with_the_exact_eps(clip):
    # data = the constant image c: the optimal eps(x_t, t) is (x_t - sqrt(ab_t) c) / sqrt(1 - ab_t)
    c = 0.3

    def eps_fn(x, t):
        ab = SCHEDULE.alpha_bars[t][:, None, None, None]
        return (x - jnp.sqrt(ab) * c) / jnp.sqrt(1 - ab)

    key, shape = jax.random.key(0), (4, 8, 8, 1)
    x = jax.jit(lambda k: ddpm.sample(eps_fn, shape, SCHEDULE, clip=clip, key=k)[0])(key)
    y = jax.jit(lambda k: ddpm.ddim_sample(eps_fn, shape, SCHEDULE, 50, clip=clip, key=k))(key)
    np.testing.assert_allclose(x, c, atol=1e-4)
    np.testing.assert_allclose(y, c, atol=1e-4)


def test_the_books_conditional_unet_skips_the_embedding_for_the_null_label():
    """Chapter 10's UNetCond: nn.Embedding(10, 100) (1,000 parameters on top of the book's
    2,167,784) added to the time embedding; the unconditional pass adds nothing."""
    net = diffusion.UNet(num_classes=10, null_label="skip")
    x, t = jnp.zeros((2, 28, 28, 1)), jnp.array([5, 500])
    variables = jax.jit(net.init)(jax.random.key(0), x, t)
    n = sum(a.size for a in jax.tree_util.tree_leaves(variables["params"]))
    assert n == 2_167_784 + 10 * 100
    x = jax.random.uniform(jax.random.key(1), x.shape)
    null = net.apply(variables, x, t, jnp.array([10, 10]))
    zeroed = jax.tree_util.tree_map(jnp.zeros_like, variables["params"]["Embed_0"])
    without = {**variables, "params": {**variables["params"], "Embed_0": zeroed}}
    np.testing.assert_allclose(null, net.apply(without, x, t, jnp.array([3, 7])), atol=1e-5)
    assert not np.allclose(null, net.apply(variables, x, t, jnp.array([3, 7])), atol=1e-3)
    np.testing.assert_array_equal(null, net.apply(variables, x, t))  # no labels: the null


def test_unet_torch_init_is_pytorchs_default_for_every_layer():
    """param_init='torch': every kernel and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as
    PyTorch's Linear/Conv2d (the book's model); Flax's default keeps zero biases."""
    import flax

    x, t = jnp.zeros((1, 28, 28, 1)), jnp.ones((1,), jnp.int32)
    torch_like = diffusion.UNet(param_init="torch").init(jax.random.key(0), x, t)["params"]
    flat = flax.traverse_util.flatten_dict(torch_like, sep="/")
    layers = {k.rsplit("/", 1)[0] for k in flat if k.endswith("kernel")}
    assert len(layers) == 5 * 4 + 1  # 5 blocks x (2 Dense + 2 Conv) + the 1x1 output conv
    for layer in layers:
        kernel, bias = np.asarray(flat[f"{layer}/kernel"]), np.asarray(flat[f"{layer}/bias"])
        bound = 1 / np.sqrt(np.prod(kernel.shape[:-1]))  # fan_in: kh * kw * c_in, or c_in
        for w in (kernel, bias):
            assert np.abs(w).max() <= bound
        if kernel.size > 10_000:  # the uniform's std bound / sqrt(3), within 5 standard errors
            assert abs(kernel.std() / (bound / np.sqrt(3)) - 1) < 5 / np.sqrt(kernel.size)
    flax_like = diffusion.UNet().init(jax.random.key(0), x, t)["params"]
    assert all(not np.any(b) for k, b in flax.traverse_util.flatten_dict(
        flax_like, sep="/").items() if k.endswith("bias") and "BatchNorm" not in k)
    with pytest.raises(ValueError, match="param_init must be one of"):
        diffusion.UNet(param_init="he").init(jax.random.key(0), x, t)


def test_the_ablation_adds_one_ingredient_a_row_from_the_book_to_the_cpu_recipe():
    from jaxgen.benchmarks import ablation
    from jaxgen.experiments._diffusion import QUICK
    from jaxgen.experiments.ddpm import PRESETS

    rows = ablation.configs(steps=500, n=1000)
    book = dataclasses.asdict(rows[0][1])
    assert all(book[k] == v for k, v in dataclasses.asdict(PRESETS["full"]).items()
               if k in ablation.RECIPE_FIELDS)  # row 0 is the book in every studied field
    steps = zip(rows[:-1], rows[1:], ablation.INGREDIENTS[1:], strict=True)
    for (_, before), (label, after), (_, added) in steps:
        a, b = dataclasses.asdict(before), dataclasses.asdict(after)
        changed = {k for k in a if a[k] != b[k]}
        assert changed and changed <= set(added), label  # its ingredients and nothing else
        assert all(b[k] == v for k, v in added.items()), label
    last = dataclasses.asdict(rows[-1][1])
    assert all(last[k] == QUICK[k] for k in ablation.RECIPE_FIELDS)  # ends at the CPU recipe
    assert {(c.batch_size, c.train_size, c.epochs, c.samplers) for _, c in rows} == {
        (32, 16000, 1, ("dpm++-20",))}  # one budget, one judge


def test_network_cost_counts_parameters_and_conv_flops():
    import flax.linen as nn

    from jaxgen.diffusion import cost

    class OneConv(nn.Module):  # the shape of a denoiser's call, one 3x3 conv 1 -> 32
        @nn.compact
        def __call__(self, x, t):
            return nn.Conv(32, (3, 3))(x)

    params, gflop = cost.size(OneConv())
    assert params == 9 * 32 + 32
    # 2 H W k^2 C_in C_out multiply-adds, plus the bias: within 1% of the conv's count
    assert gflop * 1e9 == pytest.approx(2 * 28 * 28 * 9 * 1 * 32, rel=0.01)
    net = diffusion.ResUNet(base=4, mults=(1, 2), attention=(14,), num_classes=10)
    params, gflop = cost.size(net)
    init = jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, 28, 28, 1)),
                             jnp.ones((1,), jnp.int32), jnp.zeros((1,), jnp.int32))
    assert params == sum(a.size for a in jax.tree_util.tree_leaves(init["params"]))
    wider = cost.size(dataclasses.replace(net, base=8))[1]
    # the inner convs grow as width^2, the input and output convs and the norms as width
    assert 2 < wider / gflop < 4
