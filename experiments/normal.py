"""Chapter 1: the normal distribution, and the central limit theorem made visible.

The mean of N uniforms on [0, 1] tends to N(1/2, 1/(12 N)); the sum of N to N(N/2, N/12).
We measure how close: the Kolmogorov distance sup_x |F_emp(x) - Phi(x)| for each N (the same
for the mean and the sum, which differ by a scale the distance does not see).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import normal
from jaxgen.io import figure, save_figure

NS = (1, 2, 4, 5, 10)  # the book's sum-of-uniforms figure is N = 5


def kolmogorov_distance(x: np.ndarray, mu: float, sigma: float) -> float:
    """sup_x |F_emp(x) - Phi((x - mu) / sigma)| for a sample x."""
    x = np.sort(np.asarray(x, np.float64))
    cdf = np.asarray(normal.cdf(x, mu, sigma), np.float64)
    n = len(x)
    return float(max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n)))


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of this experiment (defaults: the book)."""

    seed: int = 0
    trials: int = 10_000  # the book uses 10000


PRESETS = {"full": Config(), "quick": Config(trials=2_000)}


def train_and_evaluate(config: Config, out: Path, *, resume: bool = False) -> dict:
    trials = config.trials
    key = jax.random.key(config.seed)

    fig, ax = figure()
    xs = jnp.linspace(-5, 5, 400)
    for mu, sigma in [(0, 1), (0, 0.5), (0, 2), (2, 1)]:
        ax.plot(xs, normal.pdf(xs, mu, sigma), label=f"mu={mu}, sigma={sigma}")
    ax.set(title="Normal densities", xlabel="x", ylabel="p(x)")
    ax.legend()
    save_figure(fig, out / "normal_pdfs.png")

    fig, axes = figure(2, len(NS), size=(3.2, 2.8))
    distances, moments = {}, {}
    for j, n in enumerate(NS):
        u = jax.random.uniform(jax.random.fold_in(key, n), (trials, n))
        # U(0, 1): mean 1/2, variance 1/12; a sum of N has mean N/2 and variance N/12
        for i, (kind, x, mu, var) in enumerate([("mean", u.mean(1), 0.5, 1 / (12 * n)),
                                                ("sum", u.sum(1), n / 2, n / 12)]):
            sigma = float(np.sqrt(var))
            distances[n] = kolmogorov_distance(x, mu, sigma)
            if kind == "sum":
                moments[n] = {"mean": float(np.mean(x)), "n_mu": n / 2,
                              "var": float(np.var(x, ddof=1)), "n_sigma2": n / 12}
            ax = axes[i, j]
            ax.hist(np.asarray(x), bins=50, density=True, alpha=0.6, label="samples")
            grid = jnp.linspace(mu - 4 * sigma, mu + 4 * sigma, 200)
            ax.plot(grid, normal.pdf(grid, mu, sigma), "r", label="normal")
            extra = (f"\nmean {moments[n]['mean']:.3f} (N mu {n / 2:g}), var "
                     f"{moments[n]['var']:.3f} (N s^2 {n / 12:.3f})" if kind == "sum" else "")
            ax.set_title(f"{kind} of N={n} uniforms, KS={distances[n]:.3f}{extra}", fontsize=7)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Central limit theorem ({trials} trials each)")
    save_figure(fig, out / "clt.png")
    return {
        "trials": trials,
        "kolmogorov_distance": distances, "sum_moments": moments,
        "headline": f"KS distance of mean-of-N uniforms to the normal: "
                    f"N=1 {distances[1]:.3f} -> N={NS[-1]} {distances[NS[-1]]:.3f}",
        "figures": ["normal_pdfs.png", "clt.png"],
    }
