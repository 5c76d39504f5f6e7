"""Scaling curves, saved as PNG: EM iteration time against N and K, and the VAE train step time
against batch size and device count (data parallel, `jaxgen.parallel`). Device counts above the
real ones are simulated CPU devices in a child process
(`--xla_force_host_platform_device_count`), which share this machine's cores: on CPU the curve
shows the overhead of sharding, on a multi-GPU host it shows the speed-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from jaxgen import gmm, parallel, vae
from jaxgen.benchmarks.common import machine, median_seconds
from jaxgen.io import figure, save_figure
from jaxgen.train import init_state, make_train_step


def em_iteration_seconds(n: int, k: int, d: int = 8, repeats: int = 3) -> float:
    x = jnp.asarray(np.random.default_rng(0).normal(size=(n, d)), jnp.float32)
    g = gmm.fit(x, k, key=jax.random.key(0), max_iter=1)[0]
    step = jax.jit(lambda xx, gg: gmm.m_step(xx, gmm.e_step(gg, xx), reg_covar=1e-6))
    return median_seconds(lambda: step(x, g), repeats, warmup=1)


def vae_step_seconds(batch: int, devices: int = 1, repeats: int = 5) -> float:
    """One jitted VAE train step on `devices` devices (batch sharded, state replicated)."""
    model, opt = vae.VAE(), optax.adam(1e-3)
    step = make_train_step(vae.make_loss(model, "gaussian", book=True), opt)
    key = jax.random.key(0)
    mesh = parallel.make_mesh(devices)
    x = np.random.default_rng(0).random((batch, 784), dtype=np.float32)
    state = parallel.replicate(init_state(model.init(key, x[:1], key), opt), mesh)
    xs = parallel.shard_batch((x,), mesh)
    holder = [state]

    def call():
        holder[0], metrics = step(holder[0], key, xs)
        return metrics

    return median_seconds(call, repeats, warmup=2)


def _child(devices: int, batch: int) -> None:  # run in a process with `devices` devices
    print(json.dumps({"seconds": vae_step_seconds(batch, devices)}))


def _devices_seconds(devices: int, batch: int) -> float:
    if devices <= jax.device_count():
        return vae_step_seconds(batch, devices)
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "").replace(
        "--xla_force_host_platform_device_count", "--ignored_count")
        + f" --xla_force_host_platform_device_count={devices}").strip()
    code = f"from jaxgen.benchmarks.scaling import _child; _child({devices}, {batch})"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def plot(rows: list[dict], path: Path) -> Path:
    """One log-log panel per curve of `rows` (as `run` returns them), saved as PNG."""
    curves = list(dict.fromkeys(r["curve"] for r in rows))
    fig, axes = figure(1, len(curves), size=(3.6, 3.2))
    for ax, curve in zip(np.atleast_1d(axes), curves, strict=True):
        xs = [r["x"] for r in rows if r["curve"] == curve]
        ys = [r["ms"] for r in rows if r["curve"] == curve]
        ax.plot(xs, ys, "o-")
        ax.set(title=curve.replace(" (", "\n("), ylabel="ms", xscale="log", yscale="log")
        ax.minorticks_off()
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ticks = np.geomspace(min(ys), max(ys), 4)
        ax.set_yticks(ticks, [f"{t:.3g}" for t in ticks])
    return save_figure(fig, path)


def run(*, quick: bool, out: Path | None = None) -> dict:
    ns = [1_000, 10_000] if quick else [1_000, 10_000, 100_000, 1_000_000]
    ks = [2, 8] if quick else [2, 4, 8, 16, 32, 64]
    batches = [16, 64] if quick else [16, 32, 64, 128, 256, 512, 1024]
    device_counts = [1, 2] if quick else [1, 2, 4, 8]
    bar = tqdm(total=len(ns) + len(ks) + len(batches) + len(device_counts), desc="bench scaling")
    rows = []

    def add(**row):
        rows.append(row)
        bar.update()

    for n in ns:
        add(curve="EM iteration vs N (K=8, D=8)", x=n, ms=1e3 * em_iteration_seconds(n, 8))
    for k in ks:
        add(curve="EM iteration vs K (N=10^4, D=8)", x=k,
            ms=1e3 * em_iteration_seconds(10_000, k))
    for b in batches:
        seconds = vae_step_seconds(b)
        add(curve="VAE train step vs batch", x=b, ms=1e3 * seconds, images_per_s=b / seconds)
    for d in device_counts:
        add(curve="VAE train step vs devices (batch 256)", x=d, ms=1e3 * _devices_seconds(d, 256))
    bar.close()
    figures = []
    if out is not None:
        path = Path(out) / f"scaling{'-quick' if quick else ''}.png"
        figures.append(str(plot(rows, path)))
    return {"machine": machine(), "rows": rows, "figures": figures, "notes": [
        "medians after warm-up; device counts beyond the real devices are simulated CPU devices "
        "sharing the same cores (they measure sharding overhead, not speed-up)"]}
