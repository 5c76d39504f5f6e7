"""Chapter 9: the forward process on flower.png, noised step by step and in closed form.

Iterating x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps and jumping straight to
x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps give the same distribution; for t > 0 we
compare, over many draws, each pixel's sample mean and variance with the closed form's:
    z2_t = mean_pixels (mean - sqrt(ab_t) x_0)^2 / ((1 - ab_t) / draws)   (about 1)
    var_ratio_t = mean_pixels var(ddof=1) / (1 - ab_t)                    (about 1)"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import diffusion
from jaxgen.data import load_flower
from jaxgen.diffusion import ddpm
from jaxgen.io import figure, save_figure

SNAPSHOTS = (0, 100, 200, 400, 600, 800, 1000)


def iterate(key, x0, schedule, draws: int):
    """`draws` independent forward chains over t = 1..T (a `lax.fori_loop` between consecutive
    snapshots, so only the snapshots are kept); returns the states at SNAPSHOTS, shape
    (len(SNAPSHOTS), draws, *x0.shape)."""
    def step(t, x):
        eps = jax.random.normal(jax.random.fold_in(key, t), x.shape)
        return jnp.sqrt(schedule.alphas[t]) * x + jnp.sqrt(schedule.betas[t]) * eps

    x = jnp.broadcast_to(x0, (draws, *x0.shape))
    kept = [x] if SNAPSHOTS[0] == 0 else []
    t = 0
    for snap in SNAPSHOTS:
        if snap > t:
            x = jax.lax.fori_loop(t + 1, snap + 1, step, x)
            kept.append(x)
            t = snap
    return jnp.stack(kept)


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of this experiment (defaults: the book)."""

    seed: int = 0
    draws: int = 64  # independent forward chains


PRESETS = {"full": Config(), "quick": Config(draws=16)}


def train_and_evaluate(config: Config, out: Path, *, resume: bool = False) -> dict:
    schedule = diffusion.linear()
    x0 = jnp.asarray(load_flower())  # (64, 64, 3) in [0, 1]
    draws = config.draws
    key = jax.random.key(config.seed)
    iterated = jax.jit(iterate, static_argnums=3)(key, x0, schedule, draws)
    ts = jnp.array(SNAPSHOTS)
    noise = jax.random.normal(jax.random.fold_in(key, 10_000), (len(SNAPSHOTS), draws,
                                                                 *x0.shape))
    closed = jax.vmap(lambda t, n: ddpm.q_sample(jnp.broadcast_to(x0, n.shape),
                                                 jnp.full((draws,), t), n, schedule))(ts, noise)
    ab = np.asarray(schedule.alpha_bars)[list(SNAPSHOTS)]
    want_mean = np.sqrt(ab)[:, None, None, None] * np.asarray(x0)
    want_var = 1 - ab
    stats = {}
    for name, xs in (("iterated", iterated), ("closed_form", closed)):
        xs = np.asarray(xs, np.float64)
        stats[name] = {
            "z2": {t: float(np.mean((xs[i].mean(0) - want_mean[i]) ** 2 / (want_var[i] / draws)))
                   for i, t in enumerate(SNAPSHOTS) if t > 0},
            "var_ratio": {t: float(xs[i].var(0, ddof=1).mean() / want_var[i])
                          for i, t in enumerate(SNAPSHOTS) if t > 0},
        }
    fig, axes = figure(2, len(SNAPSHOTS), size=(1.8, 2.0))
    for row, (name, xs) in enumerate((("iterated", iterated), ("closed form", closed))):
        for j, t in enumerate(SNAPSHOTS):
            axes[row, j].imshow(np.clip(np.asarray(xs[j, 0]), 0, 1))
            axes[row, j].set_axis_off()
            axes[row, j].set_title(f"{name}\nt={t}", fontsize=8)
    save_figure(fig, out / "noising.png")
    return {
        "draws": draws, "snapshots": list(SNAPSHOTS),
        **stats,
        "headline": "variance ratio to the closed form at t=100/1000: iterated {:.3f}/{:.3f}, "
                    "closed form {:.3f}/{:.3f}".format(
                        stats["iterated"]["var_ratio"][100], stats["iterated"]["var_ratio"][1000],
                        stats["closed_form"]["var_ratio"][100],
                        stats["closed_form"]["var_ratio"][1000]),
        "figures": ["noising.png"],
    }
