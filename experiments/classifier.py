"""MNIST classifiers: MLP design choices compared (activation, initialisation, optimiser), and
the CNN that becomes the project's evaluator (label accuracy and MNIST-FID)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import evaluate
from jaxgen.classifier import CNN, MLP, make_loss
from jaxgen.data import load_mnist, map_batches
from jaxgen.experiments._common import (
    check_seeds,
    check_train_split,
    seed_keys,
    spread,
    train_seeds,
)
from jaxgen.io import figure, save_figure
from jaxgen.train import train

log = logging.getLogger("jaxgen")

MLP_VARIANTS = {  # name -> (activation, init, optimiser)
    "ReLU + He + Adam": ("relu", "he", optax.adam(1e-3)),
    "sigmoid + Xavier + Adam": ("sigmoid", "xavier", optax.adam(1e-3)),
    "ReLU + Xavier + Adam": ("relu", "xavier", optax.adam(1e-3)),
    "ReLU + He + SGD": ("relu", "he", optax.sgd(0.1)),
}


def test_accuracy(model, params, test) -> float:
    fn = jax.jit(lambda x: jnp.argmax(model.apply(params, x), -1))
    return float(np.mean(map_batches(fn, (test.images,), 1000) == test.labels))


def _mlp_line(results: dict) -> str:
    def acc(r):
        s = r.get("seeds")
        return (f"{s['test_accuracy']['mean']:.4f} ± {s['test_accuracy']['std']:.4f}" if s
                else f"{r['test_accuracy']:.4f}")
    return "MLP test accuracy: " + ", ".join(f"{n} {acc(r)}" for n, r in results.items())


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of this experiment (defaults: the book)."""

    seed: int = 0
    mlp_epochs: int = 10
    cnn_epochs: int = 12
    mlp_batch_size: int = 32
    cnn_batch_size: int = 64
    cnn_lr: float = 1e-3  # Adam's peak rate, decayed to 0 on a cosine over the run
    cnn_max_shift: int = 2  # random translation of training digits, pixels (0: none)
    fid_size: int | None = None  # test digits split in halves for FID rows (None: all)
    train_split: str = "train"  # MNIST split trained on: 'train' (60,000) or 'train-5k'
    seeds: int = 1  # MLP replicas (seed, seed + 1, ...) as one vmapped program; the CNN: seed
    # (cnn_epochs = 0 skips the CNN and writes no evaluator)

    def __post_init__(self):
        check_train_split(self.train_split)
        check_seeds(self.seeds)


PRESETS = {"full": Config(),
           "quick": Config(mlp_epochs=1, cnn_epochs=1, fid_size=2000, train_split="train-5k")}


def train_and_evaluate(config: Config, out: Path, *, resume: bool = False) -> dict:
    train_set, test = load_mnist(config.train_split), load_mnist("test")
    data = (train_set.images, train_set.labels)
    key = jax.random.key(config.seed)
    mlp_epochs, cnn_epochs = config.mlp_epochs, config.cnn_epochs

    mlp_results = {}
    fig, axes = figure(1, 2)
    for i, (name, (act, init, opt)) in enumerate(MLP_VARIANTS.items()):
        model = MLP(activation=act, initializer=init)
        # variant i of seed s: (init key, training key) = split(fold_in(key(s), i))
        per_seed, hists = train_seeds(
            make_loss(model), lambda k, m=model: m.init(k, train_set.images[:1]), opt, data,
            [jax.random.fold_in(r, i) for r in seed_keys(config)], epochs=mlp_epochs,
            batch_size=config.mlp_batch_size, desc=f"MLP {name}")
        accs = [test_accuracy(model, p, test) for p in per_seed]
        hist, acc = hists[0], accs[0]
        mlp_results[name] = {"test_accuracy": acc, "train_loss": [h["loss"] for h in hist]}
        if config.seeds > 1:
            mlp_results[name]["seeds"] = {"seeds": [config.seed + j for j in range(config.seeds)],
                                          "test_accuracy": spread(accs)}
        epochs = [h["epoch"] for h in hist]
        axes[0].plot(epochs, [h["loss"] for h in hist], "o-", label=f"{name} (test {acc:.3f})")
        axes[1].plot(epochs, [h["accuracy"] for h in hist], "o-", label=name)
    axes[0].set(title="MLP 784-100-100-10: training loss", xlabel="epoch",
                ylabel="cross-entropy", yscale="log")
    axes[1].set(title="training accuracy", xlabel="epoch", ylabel="accuracy")
    axes[0].legend(fontsize=8)
    save_figure(fig, out / "mlp_comparison.png")

    if cnn_epochs == 0:
        return {"data_source": train_set.source, "train_size": len(data[0]),
                "mlp": mlp_results, "cnn_epochs": 0, "headline": _mlp_line(mlp_results),
                "figures": ["mlp_comparison.png"]}
    cnn = CNN()
    params = jax.jit(cnn.init)(jax.random.fold_in(key, 100), train_set.images[:1])
    steps = cnn_epochs * (len(data[0]) // config.cnn_batch_size)
    optimizer = optax.adam(optax.cosine_decay_schedule(config.cnn_lr, max(steps, 1)))
    state, hist = train(make_loss(cnn, max_shift=config.cnn_max_shift), params, optimizer, data,
                        key=jax.random.fold_in(key, 100), epochs=cnn_epochs,
                        batch_size=config.cnn_batch_size,
                        workdir=out / "cnn", resume=resume, desc="CNN")
    params = state.params
    acc = test_accuracy(cnn, params, test)
    evaluate.save(params, out / "evaluator.msgpack")

    ev = evaluate.Evaluator(cnn, params)
    # a random split: the official test set's two halves come from different writers
    perm = np.random.default_rng(config.seed).permutation(len(test.labels))[: config.fid_size]
    half = len(perm) // 2
    a, b = test.images[perm[:half]], test.images[perm[half:]]
    noise = np.random.default_rng(config.seed).normal(size=b.shape)
    fid_halves = evaluate.fid(ev, a, b)
    fid_noisy = {s: evaluate.fid(ev, a, np.clip(b + s * noise, 0, 1)) for s in (0.1, 0.3, 0.5)}
    fig, ax = figure()
    ax.plot([h["epoch"] for h in hist], [h["loss"] for h in hist], "o-")
    ax.set(title=f"CNN on {len(data[0])} {train_set.source} digits: test accuracy {acc:.4f}",
           xlabel="epoch", ylabel="training cross-entropy", yscale="log")
    save_figure(fig, out / "cnn_training.png")
    return {
        "data_source": train_set.source, "train_size": len(data[0]),
        "test_accuracy": acc, "cnn_epochs": cnn_epochs,
        "mlp": mlp_results,
        "fid_random_halves": fid_halves, "fid_vs_noise": fid_noisy,
        "fid_first_vs_second_half": evaluate.fid(ev, test.images[:5000], test.images[5000:]),
        "evaluator": "evaluator.msgpack",
        "headline": f"CNN test accuracy {acc:.4f} ({train_set.source} data); FID random halves "
                    f"{fid_halves:.2f}, +noise 0.5: {fid_noisy[0.5]:.1f}",
        "figures": ["mlp_comparison.png", "cnn_training.png"],
    }
