"""Chapter 3: the multivariate normal; maximum likelihood for height and weight."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from jaxgen import mvn
from jaxgen.data import load_height_weight
from jaxgen.experiments._common import grid2d, padded_limits
from jaxgen.io import figure, save_figure


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of this experiment (defaults: the book)."""

    seed: int = 0



PRESETS = {"full": Config(), "quick": Config()}


def train_and_evaluate(config: Config, out: Path, *, resume: bool = False) -> dict:
    # the book's plot_norm example
    mu0, cov0 = np.array([0.5, -0.2]), np.array([[2.0, 0.3], [0.3, 0.5]])
    X, Y, pts = grid2d((-5, 5), (-5, 5), 120)
    Z = np.asarray(mvn.pdf(pts, mu0, cov0)).reshape(X.shape)
    fig = figure(1, 2)[0]
    fig.clear()
    ax3d = fig.add_subplot(1, 2, 1, projection="3d")
    ax3d.plot_surface(X, Y, Z, cmap="viridis")
    ax3d.set(title="N(x | mu, Sigma)", xlabel="x1", ylabel="x2")
    ax = fig.add_subplot(1, 2, 2)
    ax.contour(X, Y, Z, levels=10)
    ax.set(title="mu=(0.5, -0.2), Sigma=[[2, .3], [.3, .5]]", xlabel="x1", ylabel="x2",
           aspect="equal")
    save_figure(fig, out / "mvn_pdf.png")

    x = load_height_weight()
    mean, cov = mvn.mle(x)
    n_show = 500
    samples = mvn.sample(mean, cov, (n_show,), key=jax.random.key(config.seed))
    (xl, yl) = padded_limits(x)
    X, Y, pts = grid2d(xl, yl, 150)
    Z = np.asarray(mvn.pdf(pts, mean, cov)).reshape(X.shape)
    fig, axes = figure(1, 2)
    for ax, data, title in [(axes[0], x[:n_show], f"data (first {n_show} of {len(x)})"),
                            (axes[1], np.asarray(samples), f"{n_show} samples from the MLE")]:
        ax.scatter(data[:, 0], data[:, 1], s=4, alpha=0.5)
        ax.contour(X, Y, Z, levels=8, cmap="viridis")
        ax.set(title=title, xlabel="height (cm)", ylabel="weight (kg)", xlim=xl, ylim=yl)
    save_figure(fig, out / "height_weight_mle.png")
    _, cov_unbiased = mvn.mle(x, ddof=1)
    return {
        "mean": mean, "cov_mle_ddof0": cov, "cov_ddof1": cov_unbiased,
        "pdf_at_origin_book_example": mvn.pdf(np.zeros(2), np.array([1.0, 2.0]), np.eye(2)),
        # the book's code estimates the covariance with np.cov, whose default is ddof 1
        "book": {"mean": [172.70250854, 57.6422088],
                 "cov_np_cov_ddof1": [[23.331451079, 12.847364766],
                                      [12.847364766, 27.976587077]],
                 "pdf_at_origin_book_example": 0.013064233284684921},
        "headline": "mean=({:.4f}, {:.4f}) cov (ddof 1, as the book's np.cov)=[[{:.3f}, {:.3f}], "
                    "[{:.3f}, {:.3f}]]".format(*np.asarray(mean).tolist(),
                                               *np.asarray(cov_unbiased).ravel().tolist()),
        "figures": ["mvn_pdf.png", "height_weight_mle.png"],
    }
