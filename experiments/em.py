"""Chapter 5: EM for a Gaussian mixture on Old Faithful, from the book's start; then
k-means++ restarts and model selection by BIC (beyond the book)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from jaxgen import gmm
from jaxgen.data import load_old_faithful
from jaxgen.experiments._common import grid2d, padded_limits
from jaxgen.io import figure, save_figure

BOOK_START = gmm.GMM(
    weights=np.array([0.5, 0.5]),
    means=np.array([[0.0, 50.0], [0.0, 100.0]]),
    covs=np.stack([np.eye(2), np.eye(2)]),
)


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of this experiment (defaults: the book)."""

    seed: int = 0
    max_k: int = 6  # BIC over K = 1..max_k
    n_init: int = 10  # restarts per K


PRESETS = {"full": Config(), "quick": Config(max_k=4, n_init=4)}


def train_and_evaluate(config: Config, out: Path, *, resume: bool = False) -> dict:
    x = load_old_faithful()
    key = jax.random.key(config.seed)
    # the book: no covariance regulariser, tolerance 1e-4 on the mean log-likelihood
    fitted, info = gmm.fit(x, BOOK_START, max_iter=100, tol=1e-4, reg_covar=0.0)
    n = int(info.n_iter)
    trace = np.asarray(info.log_likelihood[: n + 1])
    samples, _ = gmm.sample(fitted, 500, key=jax.random.fold_in(key, 0))

    ks = range(1, config.max_k + 1)
    bics, logliks, fits = {}, {}, {}
    for k in ks:
        g, _ = gmm.fit(x, k, key=jax.random.fold_in(key, k), n_init=config.n_init)
        fits[k] = g
        bics[k] = float(gmm.bic(g, x))
        logliks[k] = float(gmm.log_prob(g, x).mean())
    best_k = min(bics, key=bics.get)

    fig, axes = figure(2, 2, size=(5, 4))
    axes[0, 0].plot(range(1, n + 1), trace[1:], "o-")
    axes[0, 0].set(title=f"EM from the book's start: {n} iterations\n"
                         f"(start: {trace[0]:.2f}, off the scale)",
                   xlabel="iteration", ylabel="mean log-likelihood")
    xl, yl = padded_limits(x, 0.15)
    X, Y, pts = grid2d(xl, yl, 200)
    Z = np.exp(np.asarray(gmm.log_prob(fitted, pts))).reshape(X.shape)
    axes[0, 1].scatter(x[:, 0], x[:, 1], s=6, c="k", alpha=0.6)
    axes[0, 1].contour(X, Y, Z, levels=10)
    axes[0, 1].set(title="fitted mixture over the data")
    axes[1, 0].scatter(*np.asarray(samples).T, s=6, alpha=0.6, c="tab:orange")
    axes[1, 0].contour(X, Y, Z, levels=10, colors="gray", linewidths=0.6)
    axes[1, 0].set(title="500 samples from the fitted mixture")
    for ax in (axes[0, 1], axes[1, 0]):
        ax.set(xlabel="eruption (min)", ylabel="waiting (min)", xlim=xl, ylim=yl)
    axes[1, 1].plot(list(bics), list(bics.values()), "o-")
    axes[1, 1].set(title=f"BIC (k-means++ restarts): best K={best_k}", xlabel="K",
                   ylabel="BIC (lower is better)")
    save_figure(fig, out / "em_old_faithful.png")
    # why a mixture: one Gaussian against two on the bimodal data
    fig, axes = figure(1, 2, size=(4.2, 3.6))
    for ax, k in zip(axes, (1, 2), strict=True):
        Zk = np.exp(np.asarray(gmm.log_prob(fits[k], pts))).reshape(X.shape)
        ax.scatter(x[:, 0], x[:, 1], s=6, c="k", alpha=0.6)
        ax.contour(X, Y, Zk, levels=10)
        ax.set(title=f"K={k}: mean log-lik {logliks[k]:.3f}, BIC {bics[k]:.1f}",
               xlabel="eruption (min)", ylabel="waiting (min)", xlim=xl, ylim=yl)
    save_figure(fig, out / "em_one_vs_two.png")

    # why EM works: log p = ELBO + KL(q || p(z|x)) at every half-step, from uniform q
    bound = gmm.em_bound_trace(x, BOOK_START, n)
    lp, elbo, kl = (np.asarray(a) for a in bound[:3])
    fig, axes = figure(1, 2, size=(5, 3.6))
    half = np.arange(len(lp)) / 2
    for ax, lo in ((axes[0], 0), (axes[1], 3)):  # the whole run, and a close-up past the start
        ax.plot(half[lo:], lp[lo:], "k-", label="log p(x)")
        ax.plot(half[lo:], elbo[lo:], "o--", ms=3, label="ELBO(q, theta)")
        ax.fill_between(half[lo:], elbo[lo:], lp[lo:], alpha=0.25, label="KL(q || p(z|x))")
        ax.set(xlabel="EM iteration (E-steps at .5, M-steps at whole numbers)",
               ylabel="mean over points (nats)")
    axes[0].set(title="log p = ELBO + KL: the E-step closes the gap")
    axes[1].set(title="the M-step raises the ELBO (and log p)")
    axes[0].legend(fontsize=8)
    save_figure(fig, out / "em_bound.png")

    return {
        "bound": {"log_likelihood": lp, "elbo": elbo, "kl": kl, "step": list(bound.step),
                  "max_abs_log_p_minus_elbo_minus_kl": float(np.max(np.abs(lp - elbo - kl))),
                  "max_kl_after_e_step": float(np.max(kl[1::2])),
                  "elbo_never_decreases": bool(np.all(np.diff(elbo) >= -1e-6))},
        "n_iter": n, "converged": bool(info.converged), "log_likelihood_trace": trace,
        "final_mean_log_likelihood": trace[-1],
        "weights": fitted.weights, "means": fitted.means, "covs": fitted.covs,
        "bic": bics, "mean_log_likelihood_by_k": logliks, "best_k_by_bic": best_k,
        "book": {"n_iter": 9, "final_mean_log_likelihood": -4.155381,
                 "weights": [0.35595101, 0.64404899]},
        "headline": f"{n} iterations, final mean log-lik {trace[-1]:.6f}, BIC picks K={best_k}",
        "figures": ["em_old_faithful.png", "em_bound.png", "em_one_vs_two.png"],
    }
