import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxgen.benchmarks import BENCHMARKS
from jaxgen.cli import main
from jaxgen.diffusion import pretrained
from jaxgen.experiments import EXPERIMENTS


def jaxgen(*args):
    return subprocess.run([sys.executable, "-m", "jaxgen", *args], capture_output=True,
                          text=True, timeout=120)


def test_list_names_every_experiment_and_every_benchmark(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    head, sep, rest = out.partition("benchmarks (jaxgen bench NAME):")
    bench, sep2, models = rest.partition("shipped diffusion models")
    assert sep and sep2 and head.startswith("experiments (jaxgen run NAME):")
    # each section lists its own names ('gmm' is both an experiment and a benchmark)
    listed = lambda section: {line.split()[0] for line in section.splitlines()[1:] if line}  # noqa: E731
    assert listed(head) == set(EXPERIMENTS)
    assert listed(sep + bench) == set(BENCHMARKS)
    assert listed(models) == set(pretrained.available())


@pytest.mark.parametrize("args,msg", [
    (["run", "nope"], "unknown experiment 'nope'"),
    (["run", "mle", "--seed", "abc"], "--seed: must be an integer in 0..4294967295"),
    (["run", "mle", "--bogus"], "unrecognized arguments"),
    (["bench", "nope"], "unknown benchmark 'nope'"),
    (["run", "vae", "--set", "nope=1"], "--set nope: unknown key; valid keys: seed, epochs"),
    (["run", "vae", "--set", "epochs=two"], "--set epochs: expected int, got 'two'"),
    (["run", "vae", "--preset", "huge"], "has presets full, quick"),
    (["config", "cfg", "--set", "gammas=1,x"], "--set gammas: expected float"),
    (["config", "ddpm", "--set", "lr_schedule=step"],
     "--set lr_schedule: expected one of constant, cosine, got 'step'"),
    (["config", "ddpm", "--quick", "--set", "upsample=bilinear"],
     "--set upsample: expected one of conv, nearest, got 'bilinear'"),
    (["config", "cfg", "--quick", "--set", "spacing=edm"],
     "--set spacing: expected none or one of uniform, logsnr, karras, got 'edm'"),
    (["sample", "ddpm", "--spacing", "edm"], "--spacing: invalid choice: 'edm'"),
    (["config", "cfg", "--quick", "--set", "sampler=ddpm", "--set", "spacing=karras"],
     "--set spacing: the ddpm sampler takes all T timesteps"),
    ([], "required"),
])
def test_user_mistakes_get_one_line_and_exit_2(args, msg):
    r = jaxgen(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxgen: error:") and msg in lines[0]
    assert "Traceback" not in r.stderr


def test_out_that_is_a_file_is_a_usage_error(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert main(["run", "mle", "--out", str(f)]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err


# trained diffusion models take minutes even in quick form: tests/test_diffusion.py and
# tests/test_guidance.py run them in tiny configurations
DIFFUSION_TRAINED = {"ddpm", "conditional", "cfg", "classifier-guidance", "latent-diffusion"}
# smaller than --quick where the assertions below do not need its size
SMALLER = {"vae": ["epochs=1", "test_size=200", "iwae_k=10"], "hvae": ["epochs=1", "test_size=200"],
           "noising": ["draws=8"], "nn": ["sine_steps=500"], "classifier": ["fid_size=1000"],
           "estimation": ["ns=2,10", "trials=4000"],
           "nn-basics": ["train_size=500", "lr_steps=20", "examples_seen=500",
                         "overfit_size=100", "overfit_steps=50"]}


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n not in DIFFUSION_TRAINED])
def test_each_experiment_writes_figures_and_metrics(name, tmp_path):
    sets = [a for kv in SMALLER.get(name, []) for a in ("--set", kv)]
    assert main(["run", name, "--quick", *sets, "--out", str(tmp_path), "--seed", "1"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["experiment"] == name and metrics["seed"] == 1 and metrics["quick"]
    assert metrics["figures"]
    for fig in metrics["figures"]:
        assert (tmp_path / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries
    if name == "em":  # the book's run, end to end
        assert metrics["n_iter"] == 9 and metrics["best_k_by_bic"] == 2
        assert metrics["final_mean_log_likelihood"] == pytest.approx(-4.155381, abs=1e-4)
        bound = metrics["bound"]  # float32: log p = ELBO + KL to ~1e-4 of values ~4
        assert bound["max_abs_log_p_minus_elbo_minus_kl"] < 1e-3
        assert bound["max_kl_after_e_step"] < 1e-5 and bound["elbo_never_decreases"]
    if name == "estimation":  # E[sigma_hat^2] = (N-1)/N sigma^2 (ddof 0), sigma^2 (ddof 1)
        for ddof, want in (("variance_ddof0", -0.5), ("variance_ddof1", 0.0)):
            row = metrics[ddof]
            assert abs(row["bias"]["2"] - want) < 4 * row["bias_se"]["2"]
    if name == "likelihood":  # jax.grad ascent lands on the closed form; ML = min KL
        for k in ("mu", "sigma"):
            assert metrics["gradient_ascent"][k] == pytest.approx(
                metrics["mle_closed_form"][k], rel=1e-5)
        lo, hi = metrics["gap_min_max"]
        assert hi - lo < 1e-4 and metrics["argmin_kl_mu"] == metrics["argmax_loglik_mu"]
    if name == "normal":  # the sum of N uniforms: mean N/2, variance N/12 (2,000 trials)
        for m in metrics["sum_moments"].values():
            assert abs(m["mean"] - m["n_mu"]) < 4 * (m["n_sigma2"] / 2000) ** 0.5
            assert abs(m["var"] / m["n_sigma2"] - 1) < 0.15
        assert "5" in metrics["sum_moments"]
    if name == "nn-basics":  # the too-large rate is caught, not plotted as NaN
        sweep = metrics["lr_sweep"]
        assert sweep["50.0"]["diverged_at_step"] is not None
        assert sweep["0.1"]["diverged_at_step"] is None and sweep["0.1"]["final_loss"] < 2.3
        assert set(metrics["gd_modes"]) == {"full batch", "minibatch 32", "stochastic (batch 1)"}
    if name == "noising":  # iterated and closed-form noising agree with q(x_t | x_0)
        for method in ("iterated", "closed_form"):
            for key in ("z2", "var_ratio"):
                assert all(0.9 < v < 1.1 for v in metrics[method][key].values())
    if name == "classifier":
        assert (tmp_path / "evaluator.msgpack").stat().st_size > 1e6
        assert metrics["test_accuracy"] > 0.9


def test_bench_quick_writes_json_with_ratios(tmp_path, capsys):
    assert main(["bench", "gmm", "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "gmm-quick.json").read_text())
    jax_row = next(r for r in result["rows"] if r["impl"].startswith("jaxgen (jit"))
    assert jax_row["seconds"] > 0 and jax_row["vs_sklearn"] > 0
    assert result["dot_peak_gflops"] > 0 and result["machine"]["cores"] >= 1
    assert "vs_sklearn" in capsys.readouterr().out


def test_bench_unets_lists_parameters_and_flops(tmp_path, capsys):
    assert main(["bench", "unets", "--quick", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "unets-quick.json").read_text())["rows"]
    params = [r["params"] for r in rows]
    assert params[0] == 2_167_784  # the book's U-Net, as README and the ch. 9 tests count it
    assert all(r["train_step_gflop_per_image"] == 3 * r["forward_gflop_per_image"] > 0
               for r in rows)


def test_bench_core_and_scaling_quick_smoke(tmp_path, capsys):
    assert main(["bench", "core", "--quick", "--out", str(tmp_path)]) == 0
    core = json.loads((tmp_path / "core-quick.json").read_text())
    names = {r["function"] for r in core["rows"]}
    assert {"normal.log_prob", "mvn.log_prob", "gmm EM iteration"} <= names
    for r in core["rows"]:
        assert r["jit_ms"] > 0 and r["compile_ms"] >= 0
        if "op_by_op_ms" in r:
            assert r["jit_speedup"] == pytest.approx(r["op_by_op_ms"] / r["jit_ms"])
    assert main(["bench", "scaling", "--quick", "--out", str(tmp_path)]) == 0
    scaling = json.loads((tmp_path / "scaling-quick.json").read_text())
    curves = {r["curve"] for r in scaling["rows"]}
    assert any("vs devices" in c for c in curves) and any("vs N" in c for c in curves)
    assert (tmp_path / "scaling-quick.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "jit_speedup" in capsys.readouterr().out


def test_config_prints_the_resolved_preset_with_overrides(capsys):
    assert main(["config", "vae", "--quick", "--set", "epochs=2", "--set", "lr=1e-3"]) == 0
    out = capsys.readouterr().out
    cfg = json.loads(out[out.index("{"):])
    assert cfg["epochs"] == 2 and cfg["lr"] == 1e-3 and cfg["test_size"] == 1000
    assert main(["config", "cfg", "--set", "widths=8,16", "--set", "train_size=none"]) == 0
    out = capsys.readouterr().out
    cfg = json.loads(out[out.index("{"):])
    # the book's chapter 10 (the full preset): 10 epochs, the book's PyTorch initialisation
    assert cfg["widths"] == [8, 16] and cfg["train_size"] is None and cfg["epochs"] == 10
    assert cfg["param_init"] == "torch" and cfg["null_label"] == "skip"


def test_a_run_records_its_config_and_environment_and_resume_refuses_another(tmp_path,
                                                                           capsys):
    assert main(["run", "mle", "--out", str(tmp_path), "--set", "samples=500"]) == 0
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved == {"experiment": "mle", "preset": "full", "config": {"seed": 0,
                                                                        "samples": 500}}
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["config"] == saved["config"] and m["seconds"] > 0
    env = m["environment"]
    assert env["versions"]["jax"] == jax.__version__ and env["device_count"] >= 1
    assert env["cpu"] and env["device_kind"]
    capsys.readouterr()
    assert main(["run", "mle", "--out", str(tmp_path), "--resume", "--seed", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config differs" in err[0] and "samples, seed" in err[0]
    assert main(["run", "mle", "--out", str(tmp_path), "--resume", "--set", "samples=500"]) == 0


def test_run_all_resume_resumes_every_experiment(tmp_path, monkeypatch, capsys):
    # the multi-experiment branch used to call each experiment without resume, so train()
    # deleted its checkpoints: every experiment must now get resume=True and its quick preset
    import jaxgen.cli as cli

    calls = []

    def fake(name, out, config, *, preset, resume=False):
        calls.append((name, preset, resume, config.seed))
        return {"seconds": 0.0, "headline": ""}

    monkeypatch.setattr(cli, "run_experiment", fake)
    # the shipped diffusion models were trained with seed 0: another seed must train them
    assert main(["run", "all", "--resume", "--seed", "3", "--out", str(tmp_path)]) == 2
    assert not calls and "--train" in capsys.readouterr().err
    assert main(["run", "all", "--resume", "--train", "--seed", "3", "--out",
                 str(tmp_path)]) == 0
    assert [c[0] for c in calls] == list(EXPERIMENTS)
    assert all(c[1:] == ("quick", True, 3) for c in calls)


def test_vae_seeds_run_as_one_program_and_report_the_spread(tmp_path):
    """`--seeds 2`: seed 0's loss and bound in the spread are those of the plain run with
    seed 0 (to float tolerance), seed 1's differ, and mean/std follow from them."""
    tiny = ["epochs=1", "test_size=200", "iwae_k=10"]
    sets = [a for kv in tiny for a in ("--set", kv)]
    assert main(["run", "vae", "--quick", *sets, "--seeds", "2", "--out", str(tmp_path / "k")]) == 0
    assert main(["run", "vae", "--quick", *sets, "--out", str(tmp_path / "one")]) == 0
    k = json.loads((tmp_path / "k" / "metrics.json").read_text())
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    loss = k["seeds"]["epoch_book_loss"]
    assert k["seeds"]["seeds"] == [0, 1] and k["config"]["seeds"] == 2
    np.testing.assert_allclose(loss["per_seed"][0], one["epoch_book_loss"], rtol=1e-5)
    assert abs(loss["per_seed"][1][0] - loss["per_seed"][0][0]) > 1e-3
    np.testing.assert_allclose(loss["mean"], np.mean(loss["per_seed"], 0))
    np.testing.assert_allclose(loss["std"], np.std(loss["per_seed"], 0, ddof=1))
    np.testing.assert_allclose(k["seeds"]["test_neg_elbo_nats"]["per_seed"][0],
                               one["test_neg_elbo_nats"], rtol=1e-4)


def test_nn_sine_fits_of_k_seeds_are_one_program_and_seed_0_is_the_plain_run(tmp_path):
    sets = ["--set", "sine_steps=300"]
    assert main(["run", "nn", *sets, "--seeds", "3", "--out", str(tmp_path / "k")]) == 0
    assert main(["run", "nn", *sets, "--seed", "1", "--out", str(tmp_path / "s1")]) == 0
    k = json.loads((tmp_path / "k" / "metrics.json").read_text())
    s1 = json.loads((tmp_path / "s1" / "metrics.json").read_text())
    per_seed = k["seeds"]["mlp_loss"]["per_seed"]
    assert k["seeds"]["seeds"] == [0, 1, 2] and len(set(per_seed)) == 3
    np.testing.assert_allclose(per_seed[0], k["mlp_loss"], rtol=1e-6)  # seed 0's figure
    np.testing.assert_allclose(per_seed[1], s1["mlp_loss"], rtol=1e-5)  # vmapped = alone
    np.testing.assert_allclose(k["seeds"]["mlp_loss"]["std"], np.std(per_seed, ddof=1))


def test_seeds_for_an_experiment_without_replicas_is_one_line(capsys, tmp_path):
    assert main(["run", "mle", "--seeds", "3", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--seeds: experiment 'mle' does not train seed replicas" in err[0]


@pytest.mark.parametrize("bench, var, value", [
    ("ablation", "JAXGEN_ABLATION_STEPS", "2.5"), ("ablation", "JAXGEN_ABLATION_N", "0"),
    ("samplers", "JAXGEN_SAMPLER_N", "many"), ("samplers", "JAXGEN_SAMPLER_NAMES", "ddim,heun"),
    ("samplers", "JAXGEN_SAMPLER_STEPS", "10,0"),
    ("samplers", "JAXGEN_SAMPLER_SPACINGS", "logsnr,edm"),
    ("guidance", "JAXGEN_GUIDANCE_INTERVALS", "none;5,1"),
    ("guidance", "JAXGEN_GUIDANCE_GAMMAS", "3,x"),
    ("guidance", "JAXGEN_GUIDANCE_SAMPLER", "heun-10"),
    ("guidance", "JAXGEN_GUIDANCE_SPACING", "edm"),
    ("guidance", "JAXGEN_GUIDANCE_MODEL", "no-such-model")])
def test_bench_bad_environment_setting_is_one_line_exit_2(bench, var, value, tmp_path,
                                                          monkeypatch, capsys):
    monkeypatch.setenv(var, value)
    assert main(["bench", bench, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and var in err and "expected" in err
    assert not list(tmp_path.glob("*.json"))
