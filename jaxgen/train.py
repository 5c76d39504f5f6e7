"""One training stack for every model: a jitted Optax step over a pure loss, shuffled batches
from an explicit key, tqdm progress, `metrics.jsonl`, Orbax checkpoints and exact resume.

Every loss has one signature, `loss_fn(params, key, batch, model_state) -> (loss, metrics,
new_model_state)`: a scalar to minimise, a dict of scalar metrics, and the model's non-trainable
state (BatchNorm statistics) updated, or `None` passed through for a model without state.

Step s uses the key `fold_in(key, s)` and epoch e shuffles with `fold_in(data_key, e)`, so a
run resumed from a checkpoint at step s continues with exactly the batches and noise an
uninterrupted run would have used.

Many seeds as one program: with `replicas=K`, params (and model state) carry a leading axis of
K and `key` is K keys; ONE jitted `vmap` of the same step trains the K replicas, each with its
own initialisation, data order and noise, so replica i reproduces a single run with key i.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from jaxgen import parallel
from jaxgen.data.batching import batch_indices
from jaxgen.io import _atomic_write

log = logging.getLogger("jaxgen")

LossFn = Callable[[Any, jax.Array, tuple, Any], tuple[jax.Array, dict, Any]]


class TrainState(NamedTuple):
    """Everything a step changes, as one pytree (what a checkpoint holds)."""

    step: jax.Array  # int32 scalar
    params: Any
    opt_state: Any
    model_state: Any = None  # e.g. {'batch_stats': ...}; None when the model has none
    ema_params: Any = None  # exponential moving average of params; None when not kept


class TrainingDiverged(RuntimeError):
    """The loss became NaN or inf; the last good checkpoint is kept."""


def init_state(params: Any, optimizer: optax.GradientTransformation, model_state: Any = None,
               ema: bool = False) -> TrainState:
    return TrainState(jnp.asarray(0, jnp.int32), params, optimizer.init(params), model_state,
                      params if ema else None)


@functools.lru_cache(maxsize=32)  # the same loss and optimizer reuse one compiled step
def make_train_step(loss_fn: LossFn, optimizer: optax.GradientTransformation,
                    ema_decay: float | None = None, ema_warmup: bool = False,
                    replicated: bool = False):
    """The jitted update `step(state, key, batch) -> (state, metrics)`; metrics include 'loss'.

    The loss takes and returns `state.model_state` (None for a model without state). With
    `ema_decay`, `state.ema_params` <- decay * ema_params + (1 - decay) * params each step;
    with `ema_warmup`, decay = min(ema_decay, (1 + n) / (10 + n)) after n updates, so the
    average forgets the initial weights within tens of steps and is usable in a short run.
    With `replicated`, every argument and result has a leading replica axis (one `vmap`).
    """

    def step(state: TrainState, key: jax.Array, batch: tuple) -> tuple[TrainState, dict]:
        def objective(params):
            loss, metrics, model_state = loss_fn(params, key, batch, state.model_state)
            return loss, (metrics, model_state)
        (loss, (metrics, model_state)), grads = jax.value_and_grad(objective, has_aux=True)(
            state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = state.ema_params
        if ema_decay is not None:
            decay = ema_decay
            if ema_warmup:
                n = state.step.astype(jnp.float32)
                decay = jnp.minimum(ema_decay, (1.0 + n) / (10.0 + n))
            ema = jax.tree_util.tree_map(lambda e, p: decay * e + (1 - decay) * p, ema, params)
        new = TrainState(state.step + 1, params, opt_state, model_state, ema)
        return new, {"loss": loss, **metrics}

    return jax.jit(jax.vmap(step) if replicated else step)


def _checkpoints(workdir: Path):
    import orbax.checkpoint as ocp

    folder = (workdir / "checkpoints").resolve()
    # a save cut short by a kill leaves a `*.orbax-checkpoint-tmp-*` folder: removed here, at
    # once (orbax's own cleanup runs in a background thread per manager, and the two managers
    # of a resume raced each other to delete the same folder)
    for tmp in folder.glob("*.orbax-checkpoint-tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    return ocp.CheckpointManager(folder, options=ocp.CheckpointManagerOptions(max_to_keep=2,
                                                                             create=True))


class CheckpointError(RuntimeError):
    """No intact checkpoint could be restored."""


def digest(tree: Any) -> str:
    """SHA-256 of every array leaf's dtype, shape and bytes, in tree order: what
    `checksums.json` records for each saved step, so a flipped bit is detected on restore."""
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(tree):
        a = np.asarray(jax.device_get(leaf))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _read_checksums(workdir: Path) -> dict[str, str]:
    try:
        return json.loads((workdir / "checksums.json").read_text())
    except (OSError, ValueError):
        return {}


def _record_checksum(workdir: Path, step: int, state: TrainState, kept: list[int]) -> None:
    sums = {k: v for k, v in _read_checksums(workdir).items() if int(k) in kept}
    sums[str(step)] = digest(state)
    text = json.dumps(sums, indent=1).encode()
    _atomic_write(workdir / "checksums.json", lambda f: f.write(text))


def _restore_intact(manager, workdir: Path, target: TrainState, desc: str):
    """The newest checkpoint that restores, matches its recorded checksum and is finite; the
    ones above it are reported in one line each and removed (so new saves are not refused).
    None when there are no checkpoints; CheckpointError when none is intact."""
    import orbax.checkpoint as ocp

    steps = sorted(manager.all_steps(), reverse=True)
    sums = _read_checksums(workdir)
    bad = []
    for step in steps:
        try:  # a fresh manager each time: a failed restore leaves one confused
            with _checkpoints(workdir) as attempt:
                state = attempt.restore(step, args=ocp.args.StandardRestore(target))
        except Exception as e:
            reason = f"unreadable ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
        else:
            if str(step) in sums and digest(state) != sums[str(step)]:
                reason = "does not match its checksum in checksums.json"
            elif not bool(_all_finite((state.params, state.opt_state))):
                reason = "holds NaN/inf"
            else:
                for b in bad:
                    shutil.rmtree(workdir / "checkpoints" / str(b), ignore_errors=True)
                if bad:
                    manager.reload()
                return state
        log.warning("%s: checkpoint %d %s; trying an older one", desc, step, reason)
        bad.append(step)
    if steps:
        raise CheckpointError(f"{desc}: no intact checkpoint in {workdir / 'checkpoints'} "
                              f"(tried steps {', '.join(map(str, steps))}); run without "
                              f"--resume to start again")
    return None


def restore(workdir: str | Path, target: TrainState, desc: str = "restore") -> TrainState | None:
    """The newest intact checkpoint in `workdir` (readable, matching its checksum, finite), in
    the structure of `target`; None if there is none (see `_restore_intact`)."""
    workdir = Path(workdir)
    if not (workdir / "checkpoints").is_dir():
        return None
    with _checkpoints(workdir) as manager:
        return _restore_intact(manager, workdir, target, desc)


def train(
    loss_fn: LossFn,
    params: Any,
    optimizer: optax.GradientTransformation,
    data: tuple[np.ndarray, ...],
    *,
    key: jax.Array,
    epochs: int,
    batch_size: int,
    workdir: str | Path | None = None,
    resume: bool = False,
    checkpoint_every: int | None = None,
    log_every: int = 50,
    desc: str = "train",
    model_state: Any = None,
    ema_decay: float | None = None,
    ema_warmup: bool = False,
    devices: int | None = None,
    replicas: int | None = None,
) -> tuple[TrainState, list[dict]]:
    """Train `params` on `data` (arrays sharing their leading N) for `epochs` epochs.

    Args:
      loss_fn: pure `loss_fn(params, key, batch, model_state) -> (loss, metrics, model_state)`.
      key: a `jax.random` key; it drives both the shuffling and the per-step randomness.
      workdir: where `metrics.jsonl` and `checkpoints/` go; None keeps nothing on disk.
      resume: continue from the latest checkpoint in `workdir` (a fresh start if none).
        Without it, an earlier run's checkpoints and metrics in `workdir` are replaced.
      checkpoint_every: steps between checkpoints (default: each epoch's end); the last step is
        always saved.
      model_state: non-trainable state (e.g. BatchNorm statistics); see the module docstring.
      ema_decay: keep an exponential moving average of the params (for sampling).
      ema_warmup: let the EMA's decay rise with the step count (see `make_train_step`).
      devices: data-parallel over this many devices (None: 1, or what an enclosing
        `jaxgen.parallel.use_devices(n)` says). The batch is sharded over a 'data'
        mesh axis and the state replicated (`jaxgen.parallel`); batch_size must be divisible
        by it. Checkpoints restore onto any device count.
      replicas: train K replicas at once (see the module docstring): params and model_state
        have a leading axis of K, `key` has shape (K,); history values are lists of K.
    Returns:
      (state, history): the final `TrainState` (`.params`, `.model_state`, `.ema_params`) and
      one dict of mean metrics per epoch.
    Raises:
      TrainingDiverged: the loss became NaN/inf (checked every `log_every` steps and at each
        epoch's end, before anything is saved).
      CheckpointError: `resume` found checkpoints but none intact (each step's checksum is in
        `workdir/checksums.json`; a damaged newest one falls back to the previous one).
    """
    import orbax.checkpoint as ocp

    n = len(data[0])
    steps_per_epoch = n // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size must be <= the number of examples {n}, got {batch_size}")
    mesh = parallel.make_mesh(devices or parallel.default_devices())
    if batch_size % mesh.size:
        raise ValueError(f"batch_size {batch_size} must be divisible by the number of devices "
                         f"{mesh.size}")
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be an integer >= 0, got {epochs!r}")
    total = epochs * steps_per_epoch
    checkpoint_every = checkpoint_every or steps_per_epoch
    if replicas is None:
        data_key, step_key = jax.random.split(key)
        data_keys = [data_key]
        state = init_state(params, optimizer, model_state, ema=ema_decay is not None)
    else:
        if mesh.size != 1:
            raise ValueError(f"replicas train on one device; got devices={mesh.size}")
        if jnp.shape(key) != (replicas,):
            raise ValueError(f"key must hold one key per replica, shape ({replicas},), got "
                             f"{jnp.shape(key)}")
        keys = jax.vmap(jax.random.split)(key)
        data_keys, step_key = list(keys[:, 0]), keys[:, 1]
        state = jax.vmap(lambda p, ms: init_state(p, optimizer, ms, ema=ema_decay is not None))(
            params, model_state)
    step_fn = make_train_step(loss_fn, optimizer, ema_decay, ema_warmup, replicas is not None)
    state = parallel.replicate(state, mesh)
    fold = jax.vmap(jax.random.fold_in, in_axes=(0, None)) if replicas else jax.random.fold_in

    manager, metrics_path, history = None, None, []
    if workdir is not None:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        metrics_path = workdir / "metrics.jsonl"
        if not resume:
            shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
            metrics_path.unlink(missing_ok=True)
            (workdir / "checksums.json").unlink(missing_ok=True)
        manager = _checkpoints(workdir)
        if resume:
            restored = _restore_intact(manager, workdir, state, desc)
            if restored is not None:
                state = restored
                log.info("%s: resumed from step %d", desc, _step(state))
        if resume and metrics_path.exists():
            # keep only the epochs the restored state contains (none without a checkpoint), so
            # a line written after the last checkpoint is never counted twice
            history = [h for h in _read_metrics(metrics_path, desc) if h["step"] <= _step(state)]
            text = "".join(json.dumps(h) + "\n" for h in history).encode()
            _atomic_write(metrics_path, lambda f: f.write(text))

    start = _step(state)
    bar = tqdm(total=total, initial=start, desc=desc, unit="step", leave=False)
    pending: list[dict] = []
    epoch_start = time.perf_counter()
    try:
        for s in range(start, total):
            epoch, i = divmod(s, steps_per_epoch)
            if i == 0 or s == start:  # each replica shuffles with its own key
                idx = [batch_indices(n, batch_size, key=jax.random.fold_in(k, epoch))
                       for k in data_keys]
            if replicas is None:
                batch = parallel.shard_batch(tuple(a[idx[0][i]] for a in data), mesh)
            else:
                batch = tuple(np.stack([a[ix[i]] for ix in idx]) for a in data)
            state, metrics = step_fn(state, fold(step_key, s), batch)
            pending.append(metrics)
            done = s + 1
            end_of_epoch = done % steps_per_epoch == 0
            if done % log_every == 0 or end_of_epoch or done == total:
                means = _mean_finite(pending, desc, done, manager)  # running epoch means
                bar.set_postfix(loss=f"{np.mean(means['loss']):.4f}")
            bar.update()
            if end_of_epoch:
                row = {"epoch": epoch + 1, "step": done, **means,
                       "seconds": round(time.perf_counter() - epoch_start, 3)}
                history.append(row)
                pending, epoch_start = [], time.perf_counter()
                if metrics_path is not None:
                    with metrics_path.open("a") as f:
                        f.write(json.dumps(row) + "\n")
            if manager is not None and (done % checkpoint_every == 0 or done == total):
                if not bool(_all_finite((state.params, state.opt_state))):
                    last = manager.latest_step()
                    kept = (f"last good checkpoint: step {last}" if last is not None
                            else "no checkpoint kept")
                    raise TrainingDiverged(f"{desc}: parameters became NaN/inf by step {done} "
                                           f"({kept})")
                manager.save(done, args=ocp.args.StandardSave(state))
                _record_checksum(workdir, done, state, [*manager.all_steps(), done])
    finally:
        bar.close()
        if manager is not None:
            manager.wait_until_finished()
            manager.close()
    return state, history


@jax.jit
def _all_finite(tree) -> jax.Array:
    """Whether every floating-point leaf of `tree` is finite (checked before each save, so a
    checkpoint never holds NaN/inf and rotation never drops the last finite one)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _read_metrics(path: Path, desc: str) -> list[dict]:
    """The rows of `metrics.jsonl`; a line cut short (a full disk, a kill mid-write) is dropped
    with a warning instead of failing the resume."""
    rows = []
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s: %s line %d is not valid JSON (cut short?); dropped", desc,
                        path.name, i + 1)
    return rows


def _step(state: TrainState) -> int:
    """The step count (the same in every replica)."""
    return int(np.max(jax.device_get(state.step)))


def _mean_finite(pending: list[dict], desc: str, step: int, manager) -> dict:
    """Each metric's mean over the pending steps: a float, or a list of one per replica."""
    stacked = {k: np.stack([np.asarray(m[k], np.float64) for m in pending]) for k in pending[0]}
    means = {k: (float(v.mean()) if v.ndim == 1 else v.mean(0).tolist())
             for k, v in stacked.items()}
    if not all(np.all(np.isfinite(v)) for v in stacked.values()):
        last = manager.latest_step() if manager is not None else None
        kept = f"last good checkpoint: step {last}" if last is not None else "no checkpoint kept"
        raise TrainingDiverged(f"{desc}: loss became NaN/inf by step {step} ({kept})")
    return means
