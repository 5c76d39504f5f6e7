"""Chapter 2: maximum likelihood for the heights data; sampling from the fit; probabilities."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import normal
from jaxgen.data import load_height
from jaxgen.io import figure, save_figure


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of this experiment (defaults: the book)."""

    seed: int = 0
    samples: int = 10_000  # generated heights, as the book


PRESETS = {"full": Config(), "quick": Config()}


def train_and_evaluate(config: Config, out: Path, *, resume: bool = False) -> dict:
    x = load_height()
    mu, sigma = normal.mle(x)
    generated = normal.sample(mu, sigma, (config.samples,), key=jax.random.key(config.seed))
    p_le_160 = float(normal.cdf(160.0, mu, sigma))
    p_gt_180 = float(1.0 - normal.cdf(180.0, mu, sigma))

    fig, axes = figure(1, 2)
    grid = jnp.linspace(150, 195, 400)
    axes[0].hist(x, bins=50, density=True, alpha=0.6, label="data (25,000 heights)")
    axes[0].plot(grid, normal.pdf(grid, mu, sigma), "r",
                 label=f"MLE N({float(mu):.2f}, {float(sigma):.2f}^2)")
    axes[0].fill_between(grid, normal.pdf(grid, mu, sigma), where=grid > 180, color="orange",
                         alpha=0.5, label=f"P(x > 180) = {p_gt_180:.4f}")
    axes[0].set(title="Heights and the maximum-likelihood normal", xlabel="height (cm)",
                ylabel="density")
    axes[0].legend(fontsize=8)
    axes[1].hist(x, bins=50, density=True, alpha=0.5, label="data")
    axes[1].hist(np.asarray(generated), bins=50, density=True, alpha=0.5,
                 label="10,000 generated")
    axes[1].set(title="Data vs samples from the fitted model", xlabel="height (cm)")
    axes[1].legend(fontsize=8)
    save_figure(fig, out / "heights_mle.png")
    return {
        "mu": mu, "sigma": sigma, "p_le_160": p_le_160, "p_gt_180": p_gt_180,
        "generated_mean": jnp.mean(generated), "generated_std": jnp.std(generated),
        "book": {"mu": 172.7025085367, "sigma": 4.8301674734, "p_le_160": 0.004271406830855,
                 "p_gt_180": 0.06541774339950823},
        "headline": f"mu={float(mu):.4f} sigma={float(sigma):.4f} P(x<=160)={p_le_160:.5f} "
                    f"P(x>180)={p_gt_180:.5f}",
        "figures": ["heights_mle.png"],
    }
