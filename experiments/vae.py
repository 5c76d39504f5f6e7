"""Chapter 7: the VAE on MNIST. The book's model (Gaussian likelihood, its loss), a Bernoulli
model on binarised digits (negative ELBO in nats), IWAE estimates (k=100), and a 2-D latent map."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from jaxgen import vae
from jaxgen.data import load_mnist, map_batches, per_example
from jaxgen.experiments._common import (
    MNISTTraining,
    image_grid,
    seed_keys,
    seeds_summary,
    train_seeds,
)
from jaxgen.io import figure, save_figure
from jaxgen.train import train


def test_bounds(model, params, key, x, likelihood: str, k: int) -> dict:
    """Mean test -ELBO (one sample) and IWAE-k estimate of -log p(x), in nats."""
    idx = np.arange(len(x))
    elbo = per_example(lambda kk, xb: vae.neg_elbo(model, params, xb, likelihood, key=kk),
                       key=key)
    iwae = per_example(lambda kk, xb: vae.iwae_nll(model, params, xb, k, likelihood, key=kk),
                       key=jax.random.fold_in(key, 1))
    return {"test_neg_elbo_nats": float(np.mean(map_batches(elbo, (x, idx), 1000))),
            "iwae_nll_nats": float(np.mean(map_batches(iwae, (x, idx), 250)))}


def _seeds_line(metrics: dict) -> str:
    if "seeds" not in metrics:
        return ""
    loss, elbo = metrics["seeds"]["epoch_book_loss"], metrics["seeds"]["test_neg_elbo_nats"]
    return (f"{len(loss['per_seed'])} seeds: final book loss {loss['mean'][-1]:.2f} ± "
            f"{loss['std'][-1]:.2f}, test -ELBO {elbo['mean']:.2f} ± {elbo['std']:.2f}; "
            f"first seed: ")


@dataclasses.dataclass(frozen=True)
class Config(MNISTTraining):
    """The book's VAE settings: 30 epochs, Adam 3e-4, batch 32."""

    lr: float = 3e-4
    iwae_k: int = 100  # importance samples per IWAE estimate


PRESETS = {"full": Config(),
           "quick": Config(epochs=3, test_size=1000, train_split="train-5k")}


def train_and_evaluate(config: Config, out: Path, *, resume: bool = False) -> dict:
    train_set, test = load_mnist(config.train_split), load_mnist("test")
    x_train = train_set.images.reshape(-1, 784)
    x_test = test.images.reshape(-1, 784)
    x_test, test_labels = x_test[:config.test_size], test.labels[:config.test_size]
    epochs, k = config.epochs, config.iwae_k
    key = jax.random.key(config.seed)
    metrics = {"data_source": train_set.source, "train_size": len(x_train),
               "test_size": len(x_test), "epochs": epochs}

    model = vae.VAE()
    params_per_seed, hists = train_seeds(
        vae.make_loss(model, "gaussian", book=True), lambda k: model.init(k, x_train[:1], k),
        optax.adam(config.lr), (x_train,), seed_keys(config), epochs=epochs,
        batch_size=config.batch_size, workdir=out / "gaussian", resume=resume, desc="VAE (book)")
    params, hist = params_per_seed[0], hists[0]  # the first seed for the figures
    # seed i's bounds from fold_in(key(seed + i), 2); the first seed's are the headline's
    bounds = [test_bounds(model, p, jax.random.fold_in(jax.random.key(config.seed + i), 2),
                          x_test, "gaussian", k) for i, p in enumerate(params_per_seed)]
    if config.seeds > 1:
        metrics["seeds"] = seeds_summary(config, hists, bounds)
    metrics["params"] = sum(p.size for p in jax.tree_util.tree_leaves(params))
    metrics["epoch_book_loss"] = [h["loss"] for h in hist]
    metrics.update(bounds[0])

    binary = lambda x: (x > 0.5).astype(np.float32)  # noqa: E731
    k_init, k_train = jax.random.split(jax.random.fold_in(key, 3))
    params_b = model.init(k_init, x_train[:1], k_init)
    state_b, hist_b = train(vae.make_loss(model, "bernoulli", book=False), params_b,
                            optax.adam(config.lr), (binary(x_train),),
                            key=k_train, epochs=epochs,
                            batch_size=config.batch_size,
                            workdir=out / "bernoulli", resume=resume, desc="VAE (Bernoulli)")
    metrics["bernoulli"] = {"epoch_neg_elbo": [h["loss"] for h in hist_b],
                            **test_bounds(model, state_b.params, jax.random.fold_in(key, 4),
                                          binary(x_test), "bernoulli", k)}

    # figures from the book's model: decoder means sigmoid(logits)
    decode = jax.jit(lambda z: nn.sigmoid(model.apply(params, z, method=vae.VAE.decode)))
    z = jax.random.normal(jax.random.fold_in(key, 5), (64, model.latent))
    fig, ax = figure(size=(6, 6))
    image_grid(ax, decode(z), 8, "64 samples: sigmoid(decoder(z)), z ~ N(0, I)")
    save_figure(fig, out / "samples.png")

    mu, _ = model.apply(params, x_test[:10], method=vae.VAE.encode)
    fig, ax = figure(size=(10, 2.5))
    image_grid(ax, np.concatenate([x_test[:10], decode(mu)]), 2,
               "test digits (top) and reconstructions from the posterior mean (bottom)")
    save_figure(fig, out / "reconstructions.png")

    ends, _ = model.apply(params, x_test[:2], method=vae.VAE.encode)
    t = jnp.linspace(0, 1, 10)[:, None]
    fig, ax = figure(size=(10, 1.6))
    image_grid(ax, decode((1 - t) * ends[0] + t * ends[1]), 1,
               "latent interpolation between two test digits")
    save_figure(fig, out / "interpolation.png")

    model2 = vae.VAE(latent=2)
    k_init, k_train = jax.random.split(jax.random.fold_in(key, 6))
    p2 = model2.init(k_init, x_train[:1], k_init)
    p2 = train(vae.make_loss(model2, "gaussian", book=True), p2, optax.adam(config.lr), (x_train,),
               key=k_train, epochs=epochs, batch_size=config.batch_size,
               desc="VAE latent 2")[0].params
    mu2, _ = model2.apply(p2, x_test, method=vae.VAE.encode)
    grid = jnp.stack(jnp.meshgrid(jnp.linspace(-2.5, 2.5, 15), jnp.linspace(2.5, -2.5, 15)),
                     -1).reshape(-1, 2)
    fig, axes = figure(1, 2, size=(6, 6))
    sc = axes[0].scatter(*np.asarray(mu2).T, c=test_labels, cmap="tab10", s=3)
    fig.colorbar(sc, ax=axes[0], label="digit")
    axes[0].set(title="test digits' posterior means (latent_dim=2)", xlabel="z1", ylabel="z2")
    image_grid(axes[1], nn.sigmoid(model2.apply(p2, grid, method=vae.VAE.decode)), 15,
               "decoded grid over [-2.5, 2.5]^2")
    save_figure(fig, out / "latent_2d.png")

    return {**metrics,
            "book": {"epoch_book_loss_first_last": [54.05, 38.60], "params": 326824,
                     "note": "the book trains on all 60,000 digits"},
            "headline": _seeds_line(metrics) +
                        f"book loss {hist[0]['loss']:.2f} -> {hist[-1]['loss']:.2f}; Bernoulli "
                        f"-ELBO {metrics['bernoulli']['test_neg_elbo_nats']:.1f} nats, IWAE "
                        f"{metrics['bernoulli']['iwae_nll_nats']:.1f}",
            "figures": ["samples.png", "reconstructions.png", "interpolation.png",
                        "latent_2d.png"]}
