"""Chapter 4: a Gaussian mixture (the book's parameters for Old Faithful); its density and
ancestral samples against the data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from jaxgen import gmm
from jaxgen.data import load_old_faithful
from jaxgen.experiments._common import grid2d, padded_limits
from jaxgen.io import figure, save_figure

BOOK_GMM = gmm.GMM(
    weights=np.array([0.35, 0.65]),
    means=np.array([[2.0, 54.50], [4.3, 80.0]]),
    covs=np.array([[[0.07, 0.44], [0.44, 33.7]], [[0.17, 0.94], [0.94, 36.00]]]),
)


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of this experiment (defaults: the book)."""

    seed: int = 0
    samples: int = 500  # as the book


PRESETS = {"full": Config(), "quick": Config()}


def train_and_evaluate(config: Config, out: Path, *, resume: bool = False) -> dict:
    data = load_old_faithful()
    samples, labels = gmm.sample(BOOK_GMM, config.samples, key=jax.random.key(config.seed))
    samples, labels = np.asarray(samples), np.asarray(labels)
    xl, yl = padded_limits(data, 0.15)
    X, Y, pts = grid2d(xl, yl, 200)
    Z = np.exp(np.asarray(gmm.log_prob(BOOK_GMM, pts))).reshape(X.shape)

    fig, axes = figure(1, 3, size=(4.5, 4))
    cs = axes[0].contourf(X, Y, Z, levels=20, cmap="viridis")
    fig.colorbar(cs, ax=axes[0], label="p(x)")
    axes[0].set(title="GMM density (book parameters)")
    axes[1].scatter(data[:, 0], data[:, 1], s=6, c="k", alpha=0.6)
    axes[1].contour(X, Y, Z, levels=8)
    axes[1].set(title="Old Faithful data (272)")
    for k in range(2):
        axes[2].scatter(*samples[labels == k].T, s=6, alpha=0.6, label=f"component {k}")
    axes[2].contour(X, Y, Z, levels=8, colors="gray", linewidths=0.6)
    axes[2].set(title="500 ancestral samples")
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.set(xlabel="eruption (min)", ylabel="waiting (min)", xlim=xl, ylim=yl)
    save_figure(fig, out / "gmm_density_samples.png")
    mean_ll = float(np.mean(gmm.log_prob(BOOK_GMM, data)))
    return {
        "data_mean_log_likelihood": mean_ll,
        "sample_component_shares": np.bincount(labels, minlength=2) / len(labels),
        "sample_mean": samples.mean(0), "data_mean": data.mean(0),
        "headline": f"mean log-lik of the data under the book's GMM {mean_ll:.4f}",
        "figures": ["gmm_density_samples.png"],
    }
