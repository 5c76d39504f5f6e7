"""Chapter 2 (point estimation): what makes an estimator good, by simulation. Every panel
draws `trials` data sets of each size N at once and estimates them in one vmapped program
(`jaxgen.estimation`): the bias of sigma^2 with ddof 0 and 1 against the closed form (N-1)/N,
Var(p_hat) of the Bernoulli MLE against p(1-p)/N, consistency (the spread of the mean falling as
N^-1/2), and two counterexamples: unbiased but inconsistent (the first observation) and biased
but consistent (the mean plus 1/N)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import bernoulli, estimation, normal
from jaxgen.io import figure, save_figure


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the simulations."""

    seed: int = 0
    trials: int = 20_000  # simulated data sets per N
    ns: tuple[int, ...] = (2, 3, 5, 10, 20, 50, 100, 1000)  # data-set sizes (one compile each)
    p: float = 0.3  # the Bernoulli parameter


PRESETS = {"full": Config(), "quick": Config(trials=4_000, ns=(2, 5, 20, 100))}


def train_and_evaluate(config: Config, out: Path, *, resume: bool = False) -> dict:
    key = jax.random.key(config.seed)
    NS = config.ns
    if len(NS) < 2 or min(NS) < 2:
        raise ValueError(f"ns must hold at least two sizes >= 2, got {NS}")
    gauss = lambda k, n: jax.random.normal(k, (n,))  # noqa: E731  (mu 0, sigma^2 1)
    coin = lambda k, n: jax.random.bernoulli(k, config.p, (n,))  # noqa: E731

    def study(estimator, sampler, truth, i):
        rows = [estimation.bias_variance(estimation.simulate(
            estimator, sampler, n, config.trials, key=jax.random.fold_in(key, 100 * i + n)),
            truth) for n in NS]
        return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}

    var0 = study(lambda x: normal.mle(x)[1] ** 2, gauss, 1.0, 0)
    var1 = study(lambda x: normal.mle(x, ddof=1)[1] ** 2, gauss, 1.0, 1)
    p_hat = study(bernoulli.mle, coin, config.p, 2)
    mean = study(jnp.mean, gauss, 0.0, 3)
    first = study(lambda x: x[0], gauss, 0.0, 4)
    shifted = study(lambda x: jnp.mean(x) + 1.0 / x.shape[0], gauss, 0.0, 5)
    ns = np.array(NS, float)
    slope = float(np.polyfit(np.log(ns), 0.5 * np.log(mean["variance"]), 1)[0])

    fig, axes = figure(2, 2, size=(5, 4))
    ax = axes[0, 0]
    ax.plot(ns, 1 + var0["bias"], "o", label="ddof 0 (MLE), simulated")
    ax.plot(ns, (ns - 1) / ns, "k-", lw=1, label="(N-1)/N, closed form")
    ax.plot(ns, 1 + var1["bias"], "s", label="ddof 1, simulated")
    ax.axhline(1.0, color="gray", ls=":")
    ax.set(xscale="log", xlabel="N", ylabel="E[sigma_hat^2] / sigma^2",
           title="bias of the variance estimate")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    ax.plot(ns, p_hat["variance"], "o", label="Var(p_hat), simulated")
    ax.plot(ns, config.p * (1 - config.p) / ns, "k-", lw=1, label="p(1-p)/N")
    ax.set(xscale="log", yscale="log", xlabel="N", title=f"Bernoulli MLE, p = {config.p}")
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    ax.plot(ns, np.sqrt(mean["variance"]), "o", label=f"sd of the mean (slope {slope:.3f})")
    ax.plot(ns, 1 / np.sqrt(ns), "k-", lw=1, label="N^-1/2")
    ax.set(xscale="log", yscale="log", xlabel="N", title="consistency: the spread shrinks")
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    ax.plot(ns, np.sqrt(first["mse"]), "o-", label="x_1: unbiased, inconsistent")
    ax.plot(ns, np.sqrt(shifted["mse"]), "s-", label="mean + 1/N: biased, consistent")
    ax.set(xscale="log", yscale="log", xlabel="N", ylabel="root mean squared error",
           title="bias and consistency are different things")
    ax.legend(fontsize=7)
    save_figure(fig, out / "estimation.png")
    table = lambda r: {k: dict(zip(NS, v.tolist(), strict=True)) for k, v in r.items()}  # noqa: E731
    return {
        "ns": list(NS), "trials": config.trials,
        "variance_ddof0": table(var0), "variance_ddof1": table(var1),
        "variance_ddof0_closed_form_bias": {n: -1 / n for n in NS},
        "bernoulli": {**table(p_hat), "closed_form_variance": {
            n: config.p * (1 - config.p) / n for n in NS}},
        "mean_sd_slope": slope,
        "first_observation": table(first), "mean_plus_one_over_n": table(shifted),
        "headline": f"E[sigma^2 ddof 0] at N={NS[0]}: {1 + var0['bias'][0]:.3f} (closed form "
                    f"{(NS[0] - 1) / NS[0]:.3f}); Var(p_hat) at N={NS[-1]}: "
                    f"{p_hat['variance'][-1]:.5f} (closed form "
                    f"{config.p * (1 - config.p) / NS[-1]:.5f}); sd of the mean ~ N^{slope:.3f}",
        "figures": ["estimation.png"],
    }
