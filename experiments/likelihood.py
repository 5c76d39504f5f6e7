"""Chapter 2: the likelihood as a function of the parameters, maximised by gradient ascent with
`jax.grad`, and the same fit as minimising KL(p_data || p_theta).

    l(mu, sigma) = (1/N) sum_n log N(x_n | mu, sigma^2)          (mean log-likelihood)
    KL(p_data || p_theta) = E_data[log p_data(x)] - E_data[log p_theta(x)] = -H(p_data) - l

The data's entropy H does not depend on theta, so the two objectives differ by a constant and
share their minimiser: maximum likelihood is KL minimisation. p_data is the histogram density of
the heights (bin width `bin_cm`), its expectation estimated by Monte Carlo over the data."""

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
    """Settings of the gradient ascent and the histogram density."""

    seed: int = 0
    steps: int = 2_000  # gradient-ascent steps on (mu, log sigma)
    lr: float = 0.5
    start_mu: float = 150.0
    start_sigma: float = 20.0
    bin_cm: float = 1.0  # histogram bin width of p_data


PRESETS = {"full": Config(), "quick": Config()}


def train_and_evaluate(config: Config, out: Path, *, resume: bool = False) -> dict:
    x = jnp.asarray(load_height())
    mu_hat, sigma_hat = normal.mle(x)

    def loglik(mu, sigma):
        return jnp.mean(normal.log_prob(x, mu, sigma))

    # gradient ascent on (mu, log sigma): sigma stays positive, and both move at similar rates
    def ascend(theta, _):
        g = jax.grad(lambda t: loglik(t[0], jnp.exp(t[1])))(theta)
        # mu's gradient times sigma^2 (its inverse Fisher information): both move at rate ~lr
        theta = theta + config.lr * g * jnp.array([jnp.exp(2 * theta[1]), 1.0])
        return theta, loglik(theta[0], jnp.exp(theta[1]))

    theta0 = jnp.array([config.start_mu, jnp.log(config.start_sigma)])
    theta, path = jax.jit(lambda t: jax.lax.scan(ascend, t, None, config.steps))(theta0)
    mu_gd, sigma_gd = float(theta[0]), float(jnp.exp(theta[1]))

    # p_data: the histogram density; H(p_data) by Monte Carlo over the data points
    edges = np.arange(np.floor(float(x.min())), np.ceil(float(x.max())) + config.bin_cm,
                      config.bin_cm)
    counts, _ = np.histogram(np.asarray(x), edges)
    density = counts / (len(x) * config.bin_cm)
    log_p_data = np.log(density[np.clip(np.digitize(np.asarray(x), edges) - 1, 0,
                                        len(counts) - 1)])
    entropy = -float(np.mean(log_p_data))
    mus = jnp.linspace(165.0, 180.0, 121)
    sigmas = jnp.linspace(3.0, 8.0, 101)
    l_mu = jax.vmap(lambda m: loglik(m, sigma_hat))(mus)
    l_sigma = jax.vmap(lambda s: loglik(mu_hat, s))(sigmas)
    kl_mu = -entropy - l_mu  # KL(p_data || p_theta) along mu
    gap = np.asarray(-l_mu - kl_mu)  # the constant H(p_data)

    fig, axes = figure(1, 3, size=(4.2, 3.4))
    axes[0].plot(mus, l_mu)
    axes[0].axvline(float(mu_hat), color="r", ls="--", label=f"closed form {float(mu_hat):.3f}")
    axes[0].set(title="mean log-likelihood in mu (sigma at its MLE)", xlabel="mu (cm)")
    axes[0].legend(fontsize=8)
    axes[1].plot(sigmas, l_sigma)
    axes[1].axvline(float(sigma_hat), color="r", ls="--",
                    label=f"closed form {float(sigma_hat):.3f}")
    axes[1].set(title="... in sigma (mu at its MLE)", xlabel="sigma (cm)")
    axes[1].legend(fontsize=8)
    axes[2].plot(mus, -l_mu, label="-log-likelihood")
    axes[2].plot(mus, kl_mu, label="KL(p_data || p_theta)")
    axes[2].set(title=f"they differ by H(p_data) = {entropy:.3f} nats", xlabel="mu (cm)")
    axes[2].legend(fontsize=8)
    save_figure(fig, out / "likelihood.png")
    fig, ax = figure()
    ax.plot(np.arange(1, config.steps + 1), np.asarray(path))
    ax.axhline(float(loglik(mu_hat, sigma_hat)), color="r", ls="--", label="at the closed form")
    ax.set(title=f"gradient ascent from ({config.start_mu}, {config.start_sigma}) with jax.grad",
           xlabel="step", ylabel="mean log-likelihood", xscale="log")
    ax.legend(fontsize=8)
    save_figure(fig, out / "likelihood_ascent.png")
    return {
        "mle_closed_form": {"mu": mu_hat, "sigma": sigma_hat},
        "gradient_ascent": {"mu": mu_gd, "sigma": sigma_gd, "steps": config.steps},
        "entropy_of_data_nats": entropy, "gap_min_max": [float(gap.min()), float(gap.max())],
        "argmin_kl_mu": float(mus[int(np.argmin(kl_mu))]),
        "argmax_loglik_mu": float(mus[int(np.argmax(l_mu))]),
        "headline": f"gradient ascent -> mu {mu_gd:.4f}, sigma {sigma_gd:.4f} (closed form "
                    f"{float(mu_hat):.4f}, {float(sigma_hat):.4f}); -loglik - KL = "
                    f"H(p_data) = {entropy:.3f} nats everywhere",
        "figures": ["likelihood.png", "likelihood_ascent.png"],
    }
