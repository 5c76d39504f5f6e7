"""Chapter 8: the two-level hierarchical VAE on MNIST (the book's configuration), with its test
-ELBO and IWAE estimate in nats and the same figures as the VAE."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np
import optax
from flax import linen as nn

from jaxgen import hvae
from jaxgen.data import load_mnist, map_batches, per_example
from jaxgen.experiments._common import (
    MNISTTraining,
    image_grid,
    seed_keys,
    seeds_summary,
    train_seeds,
)
from jaxgen.io import figure, save_figure


@dataclasses.dataclass(frozen=True)
class Config(MNISTTraining):
    """The book's HVAE settings: 30 epochs, Adam 1e-3, batch 32."""


PRESETS = {"full": Config(),
           "quick": Config(epochs=3, test_size=1000, train_split="train-5k")}


def _seeds_line(seeds: dict) -> str:
    if not seeds:
        return ""
    loss, elbo = seeds["seeds"]["epoch_book_loss"], seeds["seeds"]["test_neg_elbo_nats"]
    return (f"{len(loss['per_seed'])} seeds: final book loss {loss['mean'][-1]:.2f} ± "
            f"{loss['std'][-1]:.2f}, test -ELBO {elbo['mean']:.1f} ± {elbo['std']:.1f}; "
            f"first seed: ")


def test_bounds(model, params, key, x_test) -> dict:
    """Mean test -ELBO (one sample) and IWAE-100 estimate of -log p(x), in nats."""

    def neg_elbo(kk, x):
        t = hvae.terms(model.apply(params, x, kk), x)
        return t["reconstruction"] + t["kl1"] + t["kl2"]

    idx = np.arange(len(x_test))
    elbo = per_example(neg_elbo, key=jax.random.fold_in(key, 1))
    iwae = per_example(lambda kk, x: hvae.iwae_nll(model, params, x, 100, key=kk),
                       key=jax.random.fold_in(key, 2))
    return {"test_neg_elbo_nats": float(np.mean(map_batches(elbo, (x_test, idx), 1000))),
            "iwae_nll_nats": float(np.mean(map_batches(iwae, (x_test, idx), 250)))}


def train_and_evaluate(config: Config, out: Path, *, resume: bool = False) -> dict:
    train_set, test = load_mnist(config.train_split), load_mnist("test")
    x_train = train_set.images.reshape(-1, 784)
    x_test = test.images.reshape(-1, 784)[: config.test_size]
    epochs = config.epochs
    key = jax.random.key(config.seed)
    model = hvae.HVAE()
    params_per_seed, hists = train_seeds(
        hvae.make_loss(model), lambda k: model.init(k, x_train[:1], k), optax.adam(config.lr),
        (x_train,), seed_keys(config), epochs=epochs, batch_size=config.batch_size,
        workdir=out / "train", resume=resume, desc="HVAE")
    params, hist = params_per_seed[0], hists[0]  # the first seed for the figures
    n_params = sum(p.size for p in jax.tree_util.tree_leaves(params))
    bounds = [test_bounds(model, p, jax.random.key(config.seed + i), x_test)
              for i, p in enumerate(params_per_seed)]
    test_neg_elbo, iwae_nll = bounds[0]["test_neg_elbo_nats"], bounds[0]["iwae_nll_nats"]
    seeds = {} if config.seeds == 1 else {"seeds": seeds_summary(config, hists, bounds)}

    z2 = jax.random.normal(jax.random.fold_in(key, 3), (64, model.latent2))
    # ancestral sampling as the book: z2 ~ N(0, I), z1 ~ N(z1_hat(z2), I), x = sigmoid(dec(z1))
    samples = nn.sigmoid(model.apply(params, z2, jax.random.fold_in(key, 4),
                                     method=hvae.HVAE.generate))
    fig, axes = figure(1, 2, size=(6, 6))
    image_grid(axes[0], samples, 8, "64 samples: z2 ~ N(0, I) -> z1_hat -> x")
    recon = nn.sigmoid(model.apply(params, x_test[:32], key)["logits"])
    image_grid(axes[1], np.concatenate([x_test[:32], recon]), 8,
               "test digits (top 4 rows), reconstructions (bottom 4)")
    save_figure(fig, out / "samples_reconstructions.png")
    fig, ax = figure()
    ax.plot([h["epoch"] for h in hist], [h["loss"] for h in hist], "o-", label="book loss")
    ax.plot([h["epoch"] for h in hist], [h["neg_elbo"] for h in hist], "s-",
            label="-ELBO (nats)")
    ax.set(title="HVAE training", xlabel="epoch")
    ax.legend()
    save_figure(fig, out / "training.png")
    return {
        "data_source": train_set.source, "train_size": len(x_train), "test_size": len(x_test),
        "epochs": epochs, "params": n_params, **seeds,
        "epoch_book_loss": [h["loss"] for h in hist],
        "test_neg_elbo_nats": test_neg_elbo, "iwae_nll_nats": iwae_nll,
        "book": {"epoch_book_loss_first_last": [49.70, 38.86], "params": 174084,
                 "note": "the book trains on all 60,000 digits"},
        "headline": _seeds_line(seeds) +
                    f"book loss {hist[0]['loss']:.2f} -> {hist[-1]['loss']:.2f}; test -ELBO "
                    f"{test_neg_elbo:.1f} nats, IWAE {iwae_nll:.1f}",
        "figures": ["samples_reconstructions.png", "training.png"],
    }
