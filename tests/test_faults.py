"""Saved state that cannot be poisoned: what survives a divergence or a damaged metrics file."""

import json
import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen.train import TrainingDiverged, init_state, restore, train


def _walk_up(nan_after: float):
    """SGD(lr=1) on loss -w walks w up by 1 a step; once w > nan_after the loss and its
    gradient are NaN, so the update makes w NaN."""
    def loss(params, key, batch, model_state):
        w = params["w"]
        return -w * jnp.where(w > nan_after, jnp.nan, 1.0), {}, model_state
    return loss


def _restored_is_finite(workdir, optimizer):
    state = restore(workdir, init_state({"w": jnp.zeros(())}, optimizer))
    leaves = jax.tree_util.tree_leaves((state.params, state.opt_state))
    return int(state.step), all(np.all(np.isfinite(np.asarray(x))) for x in leaves
                                if np.issubdtype(np.asarray(x).dtype, np.inexact))


def test_nan_between_loss_checks_never_reaches_a_checkpoint(tmp_path):
    # NaN from step 70, loss checked only every 50 steps, checkpoints every 5: the update of
    # step 70 makes w NaN; before the fix steps 70 and 75 were saved and rotation (2 kept)
    # deleted every finite checkpoint
    data = (np.zeros((800, 1), np.float32),)
    with pytest.raises(TrainingDiverged, match=r"by step 70 \(last good checkpoint: step 65\)"):
        train(_walk_up(68.5), {"w": jnp.zeros(())}, optax.sgd(1.0), data,
              key=jax.random.key(0), epochs=1, batch_size=8, workdir=tmp_path,
              checkpoint_every=5, log_every=50)
    assert _restored_is_finite(tmp_path, optax.sgd(1.0)) == (65, True)


def test_a_learning_rate_spike_stops_at_a_finite_checkpoint(tmp_path):
    lr = optax.piecewise_constant_schedule(0.1, {15: 1e30, 16: 1e-30})
    opt = optax.sgd(lr)

    def loss(params, key, batch, model_state):
        return jnp.sum(jnp.square(params["w"] - 3.0)) ** 2, {}, model_state

    data = (np.zeros((64, 1), np.float32),)
    with pytest.raises(TrainingDiverged) as err:
        train(loss, {"w": jnp.ones(())}, opt, data, key=jax.random.key(0), epochs=8,
              batch_size=8, workdir=tmp_path, checkpoint_every=1, log_every=1000)
    step, finite = _restored_is_finite(tmp_path, opt)
    assert finite and f"last good checkpoint: step {step}" in str(err.value)


def test_a_cut_short_metrics_line_is_dropped_with_a_warning(tmp_path, caplog):
    loss = _walk_up(1e9)
    data = (np.zeros((16, 1), np.float32),)
    kw = dict(key=jax.random.key(0), batch_size=8, workdir=tmp_path)
    train(loss, {"w": jnp.zeros(())}, optax.sgd(1.0), data, epochs=2, **kw)
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 3, "st')  # what a full disk leaves of an append
    with caplog.at_level(logging.WARNING, logger="jaxgen"):
        _, hist = train(loss, {"w": jnp.zeros(())}, optax.sgd(1.0), data, epochs=3,
                        resume=True, **kw)
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert any("not valid JSON" in r.message for r in caplog.records)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]


def test_metrics_written_before_any_checkpoint_are_not_counted_twice(tmp_path):
    # a kill after epoch 1's metrics line but before its checkpoint: resume starts at step 0
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "step": 2, "loss": 0.0})
                                            + "\n")
    data = (np.zeros((16, 1), np.float32),)
    _, hist = train(_walk_up(1e9), {"w": jnp.zeros(())}, optax.sgd(1.0), data,
                    key=jax.random.key(0), epochs=2, batch_size=8, workdir=tmp_path,
                    resume=True)
    assert [h["epoch"] for h in hist] == [1, 2]
    rows = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in rows] == [1, 2]


def test_a_run_folder_is_locked_while_a_run_writes_it(tmp_path, capsys):
    import os
    import socket
    import subprocess
    import sys

    from jaxgen.cli import main

    lock = tmp_path / ".jaxgen.lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    assert main(["run", "mle", "--out", str(tmp_path)]) == 2  # this process holds it: alive
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"being written by another jaxgen run (pid {os.getpid()}" in err[0]
    assert not (tmp_path / "metrics.json").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    lock.write_text(json.dumps({"pid": int(dead), "host": socket.gethostname()}))
    assert main(["run", "mle", "--out", str(tmp_path)]) == 0  # a stale lock is taken over
    assert (tmp_path / "metrics.json").exists() and not lock.exists()  # and released


def _regression_run(workdir, epochs, resume=False):
    """Adam on a least-squares fit, 4 steps an epoch, a checkpoint every epoch (2 kept)."""
    x = np.linspace(-1, 1, 32, dtype=np.float32)[:, None]
    y = 3.0 * x + 0.5

    def loss(params, key, batch, model_state):
        xb, yb = batch
        return jnp.mean(jnp.square(xb * params["w"] + params["b"] - yb)), {}, model_state

    return train(loss, {"w": jnp.zeros(()), "b": jnp.zeros(())}, optax.adam(0.1), (x, y),
                 key=jax.random.key(0), epochs=epochs, batch_size=8, workdir=workdir,
                 resume=resume)[0]


def _truncate_the_array_files(step_dir):
    """What a full disk or a kill mid-write leaves: the data files cut short."""
    for p in step_dir.rglob("d/*"):
        p.write_bytes(p.read_bytes()[:7])


def _remove_the_manifest(step_dir):
    for p in step_dir.rglob("manifest.ocdbt"):
        p.unlink()


def _flip_one_bit_of_the_params(step_dir):
    """Rewrite the latest checkpoint with one parameter changed in its lowest bit (what a
    flipped bit on disk does to a value), keeping it perfectly readable."""
    import orbax.checkpoint as ocp

    from jaxgen.train import _checkpoints

    workdir = step_dir.parent.parent
    target = init_state({"w": jnp.zeros(()), "b": jnp.zeros(())}, optax.adam(0.1))
    step = int(step_dir.name)
    with _checkpoints(workdir) as manager:
        state = manager.restore(step, args=ocp.args.StandardRestore(target))
    w = np.asarray(state.params["w"]).view(np.int32) ^ 1
    state = state._replace(params={**state.params, "w": jnp.asarray(w.view(np.float32))})
    import shutil
    shutil.rmtree(step_dir)
    with _checkpoints(workdir) as manager:
        manager.save(step, args=ocp.args.StandardSave(state))
        manager.wait_until_finished()


@pytest.mark.parametrize("damage", [_truncate_the_array_files, _remove_the_manifest,
                                    _flip_one_bit_of_the_params])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, damage, caplog):
    full = _regression_run(tmp_path / "full", epochs=4)
    _regression_run(tmp_path / "cut", epochs=3)  # checkpoints at steps 8 and 12
    damage(tmp_path / "cut" / "checkpoints" / "12")
    with caplog.at_level(logging.WARNING, logger="jaxgen"):
        resumed = _regression_run(tmp_path / "cut", epochs=4, resume=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "checkpoint 12" in warnings[0], warnings
    assert "\n" not in warnings[0]
    # resumed from step 8: the same final parameters as the uninterrupted run
    for a, b in zip(jax.tree_util.tree_leaves(full.params),
                    jax.tree_util.tree_leaves(resumed.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_empty_step_folder_is_skipped(tmp_path):
    full = _regression_run(tmp_path / "full", epochs=4)
    _regression_run(tmp_path / "cut", epochs=3)
    (tmp_path / "cut" / "checkpoints" / "999").mkdir()
    resumed = _regression_run(tmp_path / "cut", epochs=4, resume=True)
    np.testing.assert_array_equal(full.params["w"], resumed.params["w"])


def test_no_intact_checkpoint_is_one_clear_error(tmp_path):
    from jaxgen.train import CheckpointError

    _regression_run(tmp_path, epochs=2)
    for step in (4, 8):
        _remove_the_manifest(tmp_path / "checkpoints" / str(step))
    with pytest.raises(CheckpointError, match=r"no intact checkpoint .* \(tried steps 8, 4\)"):
        _regression_run(tmp_path, epochs=3, resume=True)


def _two_saved_models(tmp_path):
    """A conditional and an unconditional tiny U-Net saved into tmp_path/cond and /uncond."""
    from jaxgen import diffusion
    from jaxgen.diffusion import pipeline

    for name, classes in (("cond", 10), ("uncond", None)):
        net = diffusion.UNet(widths=(4, 8), norm="group", num_classes=classes)
        v = net.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), jnp.ones((1,), jnp.int32))
        pipeline.save(tmp_path / name, pipeline.DiffusionModel(net, {"unet": v}, (28, 28, 1),
                                                               p_uncond=0.1 if classes else 0.0))
    return tmp_path / "cond", tmp_path / "uncond"


def _sample_error(folder, capsys):
    from jaxgen.cli import main

    assert main(["sample", str(folder), "--n", "2", "--steps", "2",
                 "--out", str(folder / "s.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert not (folder / "s.png").exists()
    return err[0]


def test_sample_spacing_for_the_ancestral_sampler_is_one_line(tmp_path, capsys):
    from jaxgen.cli import main

    _, uncond = _two_saved_models(tmp_path)
    assert main(["sample", str(uncond), "--n", "2", "--sampler", "ddpm", "--spacing", "karras",
                 "--out", str(uncond / "s.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error: --spacing applies to ddim, dpm++ and dpm++sde" in err[0]
    assert not (uncond / "s.png").exists()


def test_sample_refuses_a_msgpack_from_another_model(tmp_path, capsys):
    cond, uncond = _two_saved_models(tmp_path)
    (uncond / "model.msgpack").write_bytes((cond / "model.msgpack").read_bytes())
    assert "model.msgpack: its SHA-256 does not match" in _sample_error(uncond, capsys)
    # without the checksum (a file from before it), the shapes still catch it
    cfg = json.loads((uncond / "model.json").read_text())
    del cfg["msgpack_sha256"], cfg["sha256"]
    (uncond / "model.json").write_text(json.dumps(cfg))
    assert "model.msgpack: holds unet/params/Embed_0" in _sample_error(uncond, capsys)


def test_sample_refuses_a_flipped_byte_in_the_weights(tmp_path, capsys):
    cond, _ = _two_saved_models(tmp_path)
    data = bytearray((cond / "model.msgpack").read_bytes())
    data[len(data) // 2] ^= 0x01
    (cond / "model.msgpack").write_bytes(bytes(data))
    assert "model.msgpack: its SHA-256 does not match" in _sample_error(cond, capsys)


@pytest.mark.parametrize("field,value", [("T", 10), ("p_uncond", -1), ("schedule", "cosine")])
def test_sample_refuses_an_edited_model_json(tmp_path, capsys, field, value):
    cond, _ = _two_saved_models(tmp_path)
    cfg = json.loads((cond / "model.json").read_text())
    cfg[field] = value
    (cond / "model.json").write_text(json.dumps(cfg))
    assert "model.json: its fields do not match their sha256" in _sample_error(cond, capsys)
    # and with the checksum removed, an impossible value is still named
    if field != "schedule":
        del cfg["sha256"]
        cfg["T"] = 0 if field == "T" else cfg["T"]
        (cond / "model.json").write_text(json.dumps(cfg))
        assert f"model.json: {field} must be" in _sample_error(cond, capsys)


def test_a_shape_mismatch_names_the_array(tmp_path):
    from jaxgen import diffusion
    from jaxgen.diffusion import pipeline

    cond, _ = _two_saved_models(tmp_path)
    cfg = json.loads((cond / "model.json").read_text())
    del cfg["msgpack_sha256"], cfg["sha256"]
    cfg["unet"]["time_dim"] = 50  # the saved arrays were built for 100
    (cond / "model.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"model\.msgpack: .* has shape"):
        pipeline.load(cond)
    assert diffusion  # the module imported above is the one pipeline uses


@pytest.mark.parametrize("argv,msg", [
    (["run", "mle", "--out", ""], "--out: must not be empty"),
    (["run", "mle", "--seed", "99999999999999999999999"], "--seed: must be an integer in"),
    (["run", "mle", "--set", "seed=-3"], "--set seed: expected an int in 0..4294967295"),
    (["run", "mle", "--devices", "²"], "--devices must be 'all' or an int"),
    (["sample", "nowhere", "--seed", "-1"], "--seed: must be an integer in"),
])
def test_bad_arguments_are_one_line_before_any_work(argv, msg, capsys, tmp_path, monkeypatch):
    from jaxgen.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0], err
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a folder


def test_bench_of_an_unknown_name_creates_nothing(capsys, tmp_path, monkeypatch):
    from jaxgen.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["bench", "nosuch"]) == 2
    assert "unknown benchmark 'nosuch'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_sample_into_a_path_under_a_file_is_refused_before_sampling(tmp_path, capsys):
    from jaxgen.cli import main

    cond, _ = _two_saved_models(tmp_path)
    (tmp_path / "afile").write_text("x")
    assert main(["sample", str(cond), "--out", str(tmp_path / "afile" / "s.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "afile exists and is not a directory" in err[0]


def test_a_read_only_out_is_refused_before_the_work(tmp_path, capsys):
    import os

    from jaxgen.cli import main

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        assert main(["run", "mle", "--out", str(ro / "x")]) == 2
        assert "cannot create directory" in capsys.readouterr().err
    finally:
        ro.chmod(0o755)


def test_a_full_disk_is_one_line_and_leaves_no_half_written_file(tmp_path, capsys, monkeypatch):
    """ENOSPC half-way through writing the run's first file: one line saying so, exit 1, and
    no temporary or partial output is left."""
    import errno
    import os

    from jaxgen import io
    from jaxgen.cli import main

    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, f, path):
            self.f, self.path = f, path

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", self.path)

    def fdopen(fd, mode="r", *args, **kwargs):
        f = real_fdopen(fd, mode, *args, **kwargs)
        return FullDisk(f, "config.json") if "w" in mode else f

    monkeypatch.setattr(io.os, "fdopen", fdopen)
    assert main(["run", "mle", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("jaxgen: error:") and "No space left on device" in err[-1]
    assert not list(tmp_path.glob(".*.tmp")) and not (tmp_path / "metrics.json").exists()


def test_a_save_cut_short_leaves_no_tmp_folder_after_the_next_run(tmp_path):
    _regression_run(tmp_path, epochs=2)
    stale = tmp_path / "checkpoints" / "12.orbax-checkpoint-tmp-1234567"
    stale.mkdir()
    (stale / "partial").write_bytes(b"\0" * 10)
    _regression_run(tmp_path, epochs=3, resume=True)
    assert not stale.exists()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["12", "8"]
