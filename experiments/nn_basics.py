"""Neural-network basics (book chapter 6 and its companion material), on MNIST digits with a
plain-JAX MLP so every piece is visible: activations; the learning rate (too small, right, too
large: divergence caught and marked, never plotted as NaN); full-batch vs stochastic (batch 1)
vs minibatch gradient descent at an equal number of examples seen; over-fitting a small subset
with and without dropout; and naive N(0, 1) / N(0, 0.01^2) initialisation against Xavier and He,
seen in each layer's activations."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import nn_basics
from jaxgen.data import load_mnist
from jaxgen.io import figure, save_figure


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the basics experiments."""

    seed: int = 0
    train_size: int = 2_000  # training digits (evenly spread over the 60,000)
    lrs: tuple[float, ...] = (0.001, 0.1, 50.0)  # too small, about right, too large
    lr_steps: int = 300  # full-batch steps of the learning-rate sweep
    examples_seen: int = 20_000  # the budget of the full-batch / SGD / minibatch comparison
    overfit_size: int = 300  # the small subset the over-fitting panel trains on
    overfit_steps: int = 3_000
    dropout: float = 0.5


PRESETS = {"full": Config(), "quick": Config(lr_steps=100, examples_seen=4_000,
                                             overfit_steps=600)}


def init_mlp(key, sizes, scale):
    """Weights W_l ~ N(0, scale(fan_in, fan_out)^2), zero biases, for layer sizes `sizes`."""
    keys = jax.random.split(key, len(sizes) - 1)
    return [(jax.random.normal(k, (m, n)) * scale(m, n), jnp.zeros(n))
            for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)]


def forward(params, x, act=nn_basics.relu, key=None, dropout=0.0):
    """Logits of the MLP; with `key` and dropout > 0, inverted dropout on each hidden layer."""
    for i, (w, b) in enumerate(params[:-1]):
        x = act(x @ w + b)
        if key is not None and dropout > 0:
            keep = jax.random.bernoulli(jax.random.fold_in(key, i), 1 - dropout, x.shape)
            x = jnp.where(keep, x / (1 - dropout), 0.0)
    w, b = params[-1]
    return x @ w + b


def loss(params, x, y, **kw):
    return jnp.mean(nn_basics.cross_entropy(forward(params, x, **kw), y))


def accuracy(params, x, y):
    return float(jnp.mean(jnp.argmax(forward(params, x), -1) == y))


def descend(params, x, y, lr, steps, batch, key, dropout=0.0):
    """Plain gradient descent, one lax.scan; batch = len(x) is full-batch. Returns the final
    params and the full-data loss after every step."""
    n = x.shape[0]

    def step(p, i):
        k = jax.random.fold_in(key, i)
        # minibatches drawn with replacement (a permutation per step would cost more than
        # the step itself at batch 1)
        idx = jax.random.randint(k, (batch,), 0, n) if batch < n else jnp.arange(n)
        g = jax.grad(lambda q: loss(q, x[idx], y[idx], key=jax.random.fold_in(k, 1),
                                    dropout=dropout))(p)
        p = jax.tree_util.tree_map(lambda a, b: a - lr * b, p, g)
        return p, loss(p, x, y)

    return jax.jit(lambda p: jax.lax.scan(step, p, jnp.arange(steps)))(params)


def train_and_evaluate(config: Config, out: Path, *, resume: bool = False) -> dict:
    key = jax.random.key(config.seed)
    train, test = load_mnist("train"), load_mnist("test")
    idx = np.arange(config.train_size) * len(train.labels) // config.train_size
    x, y = jnp.asarray(train.images[idx].reshape(-1, 784)), jnp.asarray(train.labels[idx])
    xt, yt = jnp.asarray(test.images[:2000].reshape(-1, 784)), jnp.asarray(test.labels[:2000])
    he = lambda m, n: math.sqrt(2 / m)  # noqa: E731
    sizes = (784, 100, 100, 10)
    p0 = init_mlp(jax.random.fold_in(key, 0), sizes, he)
    fig, axes = figure(2, 4, size=(4.2, 3.4))

    # activations
    grid = jnp.linspace(-5, 5, 401)
    for name, f in (("step", nn_basics.step), ("sigmoid", nn_basics.sigmoid),
                    ("ReLU", nn_basics.relu)):
        axes[0, 0].plot(grid, f(grid), label=name)
    axes[0, 0].set(title="activations", xlabel="x", ylim=(-0.2, 1.5))
    axes[0, 0].legend(fontsize=8)

    # the learning rate: too small, right, too large
    sweep = {}
    for i, lr in enumerate(config.lrs):
        _, losses = descend(p0, x, y, lr, config.lr_steps, len(x), jax.random.fold_in(key, i))
        losses = np.asarray(losses)
        bad = np.flatnonzero(~np.isfinite(losses) | (losses > 1e3))
        end = int(bad[0]) if bad.size else len(losses)
        sweep[str(lr)] = {"final_loss": float(losses[end - 1]) if end else None,
                          "diverged_at_step": int(bad[0]) + 1 if bad.size else None}
        label = f"lr {lr:g}" + (f": diverged at step {bad[0] + 1}" if bad.size else "")
        axes[0, 1].plot(np.arange(1, end + 1), losses[:end], label=label)
        if bad.size:
            axes[0, 1].plot(end, losses[end - 1] if end else np.log(10), "rx", ms=8)
    axes[0, 1].set(title="full-batch GD: the learning rate", xlabel="step", ylabel="loss",
                   yscale="log")
    axes[0, 1].legend(fontsize=7)

    # full batch vs stochastic vs minibatch at an equal number of examples seen
    modes, batch_gd = {}, {"full batch": (len(x), 0.1), "minibatch 32": (32, 0.1),
                           "stochastic (batch 1)": (1, 0.01)}
    for i, (name, (batch, lr)) in enumerate(batch_gd.items()):
        steps = max(1, config.examples_seen // batch)
        descend(p0, x, y, lr, steps, batch, key)[1].block_until_ready()  # compile first
        t0 = time.perf_counter()
        p, losses = descend(p0, x, y, lr, steps, batch, jax.random.fold_in(key, 10 + i))
        losses = np.asarray(losses)
        seconds = time.perf_counter() - t0
        seen = np.arange(1, steps + 1) * batch
        axes[0, 2].plot(seen, losses, label=f"{name}, lr {lr:g} ({seconds:.2f} s)")
        # a scan's steps cost the same: step i ends at seconds * i / steps
        axes[0, 3].plot(seconds * np.arange(1, steps + 1) / steps, losses, label=name)
        modes[name] = {"batch": batch, "lr": lr, "steps": steps, "seconds": seconds,
                       "final_loss": float(losses[-1]), "test_accuracy": accuracy(p, xt, yt)}
    axes[0, 2].set(title=f"{config.examples_seen:,} examples seen", xlabel="examples seen",
                   ylabel="full-data loss", xscale="log", yscale="log")
    axes[0, 2].legend(fontsize=7)
    axes[0, 3].set(title="... against wall time", xlabel="seconds (compiled scan)",
                   ylabel="full-data loss", xscale="log", yscale="log")
    axes[0, 3].legend(fontsize=7)

    # over-fitting a small subset, with and without dropout
    xs, ys = x[: config.overfit_size], y[: config.overfit_size]
    overfit = {}
    for rate, style in ((0.0, "-"), (config.dropout, "--")):
        def step(p, i, rate=rate):
            g = jax.grad(lambda q: loss(q, xs, ys, key=jax.random.fold_in(key, i),
                                        dropout=rate))(p)
            p = jax.tree_util.tree_map(lambda a, b: a - 0.1 * b, p, g)
            return p, (loss(p, xs, ys), loss(p, xt, yt))

        p, (tr, te) = jax.jit(lambda q, s=step: jax.lax.scan(
            s, q, jnp.arange(config.overfit_steps)))(p0)
        name = f"dropout {rate:g}"
        axes[1, 0].plot(np.asarray(tr), style, c="tab:blue", label=f"{name}: train")
        axes[1, 0].plot(np.asarray(te), style, c="tab:red", label=f"{name}: test")
        overfit[name] = {"train_loss": float(tr[-1]), "test_loss": float(te[-1]),
                         "train_accuracy": accuracy(p, xs, ys),
                         "test_accuracy": accuracy(p, xt, yt)}
    axes[1, 0].set(title=f"{config.overfit_size} digits: over-fitting", xlabel="step",
                   ylabel="loss", yscale="log")
    axes[1, 0].legend(fontsize=7)

    # initialisation: each layer's activations in a 5-layer sigmoid / ReLU net
    inits = {"N(0, 1)": lambda m, n: 1.0, "N(0, 0.01^2)": lambda m, n: 0.01,
             "Xavier": lambda m, n: math.sqrt(1 / m), "He": he}
    spread = {}
    for ax, act_name, act, names in ((axes[1, 1], "sigmoid", nn_basics.sigmoid,
                                      ("N(0, 1)", "N(0, 0.01^2)", "Xavier")),
                                     (axes[1, 2], "ReLU", nn_basics.relu,
                                      ("N(0, 0.01^2)", "Xavier", "He"))):
        for j, name in enumerate(names):
            params = init_mlp(jax.random.fold_in(key, 20 + j), (784,) + (100,) * 5,
                              inits[name])
            h, layers = x[:1000], []
            for w, b in params:
                h = act(h @ w + b)
                layers.append(np.asarray(h).ravel())
            spread[f"{act_name}, {name}"] = [float(np.std(a)) for a in layers]
            ax.hist(np.concatenate(layers), bins=60, range=(0, 1) if act_name == "sigmoid"
                    else None, histtype="step", density=True, log=True,
                    label=f"{name}: std by layer " + ", ".join(
                        f"{s:.2g}" for s in spread[f"{act_name}, {name}"]))
        ax.set(title=f"{act_name} activations of 5 layers", xlabel="activation")
        ax.legend(fontsize=6)
    axes[1, 3].set_axis_off()
    save_figure(fig, out / "nn_basics.png")
    return {
        "train_size": len(x), "lr_sweep": sweep, "gd_modes": modes, "overfit": overfit,
        "activation_std_by_layer": spread,
        "headline": "lr " + ", ".join(
            f"{lr}: " + (f"diverged at {r['diverged_at_step']}" if r["diverged_at_step"]
                         else f"loss {r['final_loss']:.3f}") for lr, r in sweep.items())
                    + "; dropout test accuracy {:.3f} vs {:.3f} without".format(
                        overfit[f"dropout {config.dropout:g}"]["test_accuracy"],
                        overfit["dropout 0"]["test_accuracy"]),
        "figures": ["nn_basics.png"],
    }
