"""The project's judge of generated digits: a CNN trained on MNIST (`jaxgen run classifier`).

- `label_accuracy`: the share of images the CNN classifies as the asked label.
- `fid`: MNIST-FID, the Frechet distance between Gaussians fitted to the CNN's penultimate
  features of two image sets,
      |m_a - m_b|^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)
  (Heusel et al. 2017, with this CNN in place of Inception). 0 for identical sets.
- `precision_recall`: Kynkaanniemi et al. (2019) in the same feature space: precision is the
  share of generated samples inside the real manifold (the union of balls around each real
  feature reaching its k-th nearest real neighbour), recall the share of real samples inside
  the generated manifold. Fidelity and diversity as two numbers.
- `judge_against_test`: the protocol every FID in jaxgen's tables follows: n samples against
  all 10,000 test digits, beside the real-data floor at the same n (n random training digits
  against the same reference, cached per evaluator), with precision and recall for both.

The trained weights ship with jaxgen (`data/files/evaluator.msgpack`), so every experiment is
judged by the same network.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.classifier import CNN
from jaxgen.data import map_batches
from jaxgen.io import _atomic_write


class Evaluator(NamedTuple):
    model: CNN
    params: Any


def _template():
    """The CNN's variable tree as shapes only (no compilation): the target for `from_bytes`."""
    return jax.eval_shape(CNN().init, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))


def save(params: Any, path: str | Path) -> Path:
    """Write CNN params as msgpack, atomically."""
    data = flax.serialization.to_bytes(params)
    return _atomic_write(Path(path), lambda f: f.write(data))


def load(path: str | Path | None = None) -> Evaluator:
    """The evaluator from `path`, or the one shipped with jaxgen."""
    if path is None:
        data = (resources.files("jaxgen.data") / "files" / "evaluator.msgpack").read_bytes()
    else:
        if not Path(path).is_file():
            raise ValueError(f"path must be an evaluator file written by jaxgen, got {path}")
        data = Path(path).read_bytes()
    return Evaluator(CNN(), flax.serialization.from_bytes(_template(), data))


def _check_images(images, name: str = "images") -> np.ndarray:
    images = np.asarray(images, np.float32)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != (28, 28, 1):
        raise ValueError(f"{name} must have shape (N, 28, 28[, 1]) in [0, 1], got "
                         f"{images.shape}")
    if not np.all(np.isfinite(images)):
        raise ValueError(f"{name} must be finite, got {int(np.sum(~np.isfinite(images)))} "
                         "NaN/inf value(s)")
    lo, hi = float(images.min(initial=0.0)), float(images.max(initial=0.0))
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"{name} must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
    return images


@functools.partial(jax.jit, static_argnums=(0, 3))
def _apply(model: CNN, params: Any, x: jax.Array, penultimate: bool) -> jax.Array:
    """One compiled program per (model, batch shape, output), shared by every evaluator and
    call: params are an argument, not a constant baked into a new jit each call."""
    return model.apply(params, x, features=penultimate)


def logits(ev: Evaluator, images) -> np.ndarray:
    """Class logits, shape (N, 10)."""
    fn = functools.partial(_apply, ev.model, ev.params, penultimate=False)
    return map_batches(fn, (_check_images(images),), 500)


def features(ev: Evaluator, images) -> np.ndarray:
    """Penultimate-layer features, shape (N, 128)."""
    fn = functools.partial(_apply, ev.model, ev.params, penultimate=True)
    return map_batches(fn, (_check_images(images),), 500)


def label_accuracy(ev: Evaluator, images, labels) -> float:
    """Fraction of images classified as their (asked) label."""
    return float(np.mean(np.argmax(logits(ev, images), -1) == np.asarray(labels)))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets a (N, F) and b (M, F)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m_a, m_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((S_a S_b)^1/2) = sum sqrt(eig(S_a^1/2 S_b S_a^1/2)), a symmetric PSD matrix
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    tr_sqrt = np.sum(np.sqrt(np.clip(cross, 0, None)))
    return float(np.sum((m_a - m_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * tr_sqrt)


def fid(ev: Evaluator, images_a, images_b) -> float:
    """MNIST-FID between two image sets (each (N, 28, 28[, 1]) in [0, 1])."""
    return frechet_distance(features(ev, images_a), features(ev, images_b))


# ----------------------------------------------------------------------------- precision, recall


@functools.partial(jax.jit, static_argnums=2)
def _kth_neighbour_distance(block: jax.Array, feats: jax.Array, k: int) -> jax.Array:
    """For each row of `block` (B, F), the distance to its k-th nearest row of `feats` (N, F),
    counting itself at distance 0 when it is one of them: shape (B,)."""
    d2 = _sq_distances(block, feats)
    rows = jnp.arange(d2.shape[0])
    for _ in range(k):  # drop the k smallest, one at a time (XLA:CPU's top_k sorts each row)
        d2 = d2.at[rows, jnp.argmin(d2, axis=1)].set(jnp.inf)
    return jnp.sqrt(jnp.min(d2, axis=1))


@jax.jit
def _inside(block: jax.Array, centres: jax.Array, radii: jax.Array) -> jax.Array:
    """Whether each row of `block` lies within radii[j] of some centres[j]: shape (B,) bool."""
    return jnp.any(_sq_distances(block, centres) <= jnp.square(radii)[None, :], axis=1)


def _sq_distances(a: jax.Array, b: jax.Array) -> jax.Array:
    """|a_i - b_j|^2, shape (A, B), as |a|^2 + |b|^2 - 2 a.b (clipped at 0)."""
    d2 = (jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :]
          - 2 * a @ b.T)
    return jnp.maximum(d2, 0.0)


def _blocks(fn, rows: np.ndarray, *args, size: int = 1000) -> np.ndarray:
    return np.concatenate([np.asarray(fn(rows[i:i + size], *args))
                           for i in range(0, len(rows), size)])


def precision_recall(real_features, fake_features, k: int = 3) -> dict:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of feature sets real (N, F) and
    fake (M, F): precision = share of fake inside the real manifold, recall = share of real
    inside the fake manifold, each manifold the union of balls reaching the k-th nearest
    neighbour within its own set. Both in [0, 1]; 1 and 1 for a set against itself."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    real = np.asarray(real_features, np.float32)
    fake = np.asarray(fake_features, np.float32)
    for name, a in (("real_features", real), ("fake_features", fake)):
        if a.ndim != 2:
            raise ValueError(f"{name} must have shape (N, F), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be finite")
        if len(a) < k + 1:
            raise ValueError(f"{name} must hold at least k + 1 = {k + 1} rows to find k "
                             f"nearest neighbours, got {len(a)}")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"fake_features must have {real.shape[1]} features like "
                         f"real_features, got {fake.shape[1]}")
    return _precision_recall(real, fake, k, _radii(real, k))


def _radii(feats: np.ndarray, k: int) -> np.ndarray:
    """Each row's distance to its k-th nearest neighbour within `feats` (the manifold's balls)."""
    return _blocks(_kth_neighbour_distance, feats, jnp.asarray(feats), k)


def _precision_recall(real, fake, k: int, r_real) -> dict:
    r_fake = _radii(fake, k)
    precision = _blocks(_inside, fake, jnp.asarray(real), jnp.asarray(r_real)).mean()
    recall = _blocks(_inside, real, jnp.asarray(fake), jnp.asarray(r_fake)).mean()
    return {"precision": float(precision), "recall": float(recall)}


# ----------------------------------------------------------------------------- the protocol


def _cache_dir() -> Path:
    return Path(os.environ.get("JAXGEN_CACHE", Path("~/.cache/jaxgen").expanduser()))


def _evaluator_id(ev: Evaluator) -> str:
    return hashlib.sha256(flax.serialization.to_bytes(ev.params)).hexdigest()[:16]


def _reference(ev: Evaluator, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Features of all 10,000 test digits and their k-NN radii (once per evaluator, k and
    process)."""
    key = (_evaluator_id(ev), k)
    if key not in _REFERENCE:
        from jaxgen.data import load_mnist

        feats = features(ev, load_mnist("test").images)
        _REFERENCE[key] = feats, _radii(feats, k)
    return _REFERENCE[key]


_REFERENCE: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}


def real_data_floor(ev: Evaluator, n: int, k: int = 3, seed: int = 0) -> dict:
    """What real digits score under `judge_against_test` at sample size n: FID, precision and
    recall of n random training digits (drawn with `seed`) against all 10,000 test digits.
    Cached per evaluator, n, k and seed in `$JAXGEN_CACHE` (default ~/.cache/jaxgen)."""
    from jaxgen.data import load_mnist
    from jaxgen.io import write_json

    if not isinstance(n, int) or not k + 1 <= n <= 60000:
        raise ValueError(f"n must be an int in {k + 1}..60000, got {n!r}")
    path = _cache_dir() / f"floor-{_evaluator_id(ev)}-n{n}-k{k}-seed{seed}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass  # unreadable: compute again
    train = load_mnist("train").images
    idx = np.random.default_rng(seed).choice(len(train), n, replace=False)
    feats, (ref, r_ref) = features(ev, train[idx]), _reference(ev, k)
    floor = {"n": n, "fid": frechet_distance(feats, ref),
             **_precision_recall(ref, feats, k, r_ref)}
    write_json(path, floor)
    return floor


def judge_against_test(ev: Evaluator, images, k: int = 3) -> dict:
    """The protocol of jaxgen's tables: FID, precision and recall of `images` (n, 28, 28[, 1])
    in [0, 1] against all 10,000 test digits, with the real-data floor at the same n beside
    them ({'fid', 'precision', 'recall', 'n', 'floor': {...}})."""
    images = _check_images(images)
    n = len(images)
    if n < k + 1:
        raise ValueError(f"images must hold at least k + 1 = {k + 1} samples, got {n}")
    feats, (ref, r_ref) = features(ev, images), _reference(ev, k)
    return {"n": n, "fid": frechet_distance(feats, ref),
            **_precision_recall(ref, feats, k, r_ref), "floor": real_data_floor(ev, n, k)}
