"""Helpers shared by the experiment scripts (settings and plotting; the maths lives in jaxgen)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.config import ConfigError
from jaxgen.train import train

TRAIN_SPLITS = ("train", "train-5k")


def check_train_split(split: str) -> None:
    if split not in TRAIN_SPLITS:
        raise ConfigError(f"--set train_split: expected one of {', '.join(TRAIN_SPLITS)}, "
                          f"got {split!r}")


@dataclasses.dataclass(frozen=True)
class MNISTTraining:
    """Settings of a model trained on MNIST digits (the book's VAE and HVAE: 30 epochs of
    batch 32 with Adam)."""

    seed: int = 0
    epochs: int = 30
    lr: float = 1e-3  # Adam
    batch_size: int = 32
    test_size: int | None = None  # test digits for the bounds (None: all)
    train_split: str = "train"  # MNIST split trained on: 'train' (60,000) or 'train-5k'
    seeds: int = 1  # replicas with seeds seed, seed + 1, ... trained as one vmapped program

    def __post_init__(self):
        check_train_split(self.train_split)
        check_seeds(self.seeds)


def check_seeds(seeds: int) -> None:
    if not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--set seeds: expected an int >= 1, got {seeds!r}")


def stack(trees: list):
    """K pytrees of the same structure -> one pytree whose leaves have a leading axis K."""
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *trees)


def unstack(tree, k: int) -> list:
    """The inverse of `stack`: K pytrees."""
    return [jax.tree_util.tree_map(lambda a, i=i: a[i], tree) for i in range(k)]


def seed_keys(config) -> list:
    """The root key of each seed: key(config.seed), ..., key(config.seed + config.seeds - 1)."""
    return [jax.random.key(config.seed + i) for i in range(config.seeds)]


def train_seeds(loss, init, optimizer, data: tuple, roots: list, **kw) -> tuple[list, list]:
    """Train the model of `init(key) -> params` once per root key with `jaxgen.train`
    (keyword arguments `kw`): a plain run for one key, else ONE vmapped program (`replicas`).
    Root r is split into (init key, training key), so each replica is the single run of its
    root. Returns (params per root, history per root)."""
    keys = [jax.random.split(r) for r in roots]
    if len(keys) == 1:
        (k_init, k_train), = keys
        state, hist = train(loss, init(k_init), optimizer, data, key=k_train, **kw)
        return [state.params], [hist]
    state, hist = train(loss, stack([init(k) for k, _ in keys]), optimizer, data,
                        key=jnp.stack([k for _, k in keys]), replicas=len(keys),
                        **{**kw, "desc": f"{kw.get('desc', 'train')} x {len(keys)} seeds"})
    per_seed = [[{k: (v[i] if isinstance(v, list) else v) for k, v in h.items()} for h in hist]
                for i in range(len(keys))]
    return unstack(state.params, len(keys)), per_seed


def seeds_summary(config, hists: list, bounds: list[dict], key: str = "loss") -> dict:
    """metrics['seeds']: each seed's epoch curve of `key` and bounds, with mean and std."""
    return {"seeds": [config.seed + i for i in range(config.seeds)],
            f"epoch_{'book_loss' if key == 'loss' else key}": spread(
                [[h[key] for h in hist] for hist in hists]),
            **{name: spread([b[name] for b in bounds]) for name in bounds[0]}}


def spread(values) -> dict:
    """{'mean', 'std', 'per_seed'} of per-seed values (scalars, or equal-length lists); std is
    the sample standard deviation (ddof 1; 0 for one seed)."""
    a = np.asarray(values, np.float64)
    std = a.std(0, ddof=1) if len(a) > 1 else np.zeros(a.shape[1:])
    return {"mean": a.mean(0).tolist(), "std": std.tolist(), "per_seed": a.tolist()}


def grid2d(xlim: tuple[float, float], ylim: tuple[float, float], n: int = 150):
    """A mesh for contour plots: (X, Y) each (n, n), and the points as an (n*n, 2) array."""
    X, Y = np.meshgrid(np.linspace(*xlim, n), np.linspace(*ylim, n))
    return X, Y, np.stack([X.ravel(), Y.ravel()], axis=1)


def padded_limits(x: np.ndarray, pad: float = 0.1) -> list[tuple[float, float]]:
    """Per-column (lo, hi) limits of the data widened by `pad` of the range."""
    lo, hi = x.min(0), x.max(0)
    span = hi - lo
    return [(float(a), float(b)) for a, b in zip(lo - pad * span, hi + pad * span, strict=True)]


def image_grid(ax, images, nrow: int, title: str = "") -> None:
    """Show images (N, 28, 28[, 1]) as an nrow-row mosaic on `ax`."""
    images = np.asarray(images).reshape(len(images), 28, 28)
    ncol = -(-len(images) // nrow)
    canvas = np.ones((nrow * 30, ncol * 30))
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        canvas[r * 30 + 1:r * 30 + 29, c * 30 + 1:c * 30 + 29] = img
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    ax.set_title(title)
