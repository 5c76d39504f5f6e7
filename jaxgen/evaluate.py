"""The project's judge of generated digits: a CNN trained on MNIST (`jaxgen run classifier`).

- `label_accuracy`: the share of images the CNN classifies as the asked label.
- `fid`: MNIST-FID, the Frechet distance between Gaussians fitted to the CNN's penultimate
  features of two image sets,
      |m_a - m_b|^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)
  (Heusel et al. 2017, with this CNN in place of Inception). 0 for identical sets.

The trained weights ship with jaxgen (`data/files/evaluator.msgpack`), so every experiment is
judged by the same network.
"""

from __future__ import annotations

import functools
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


def _check_images(images) -> np.ndarray:
    images = np.asarray(images, np.float32)
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[1:] != (28, 28, 1):
        raise ValueError(f"images must have shape (N, 28, 28[, 1]) in [0, 1], got {images.shape}")
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
