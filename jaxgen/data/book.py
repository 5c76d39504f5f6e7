"""Loaders for the small data sets of the book's repository, shipped inside the package."""

from __future__ import annotations

from importlib import resources

import numpy as np


def _path(name: str):
    return resources.files("jaxgen.data") / "files" / name


def load_height() -> np.ndarray:
    """Heights in cm, shape (25000,) float64 (book chapter 2)."""
    with _path("height.txt").open() as f:
        return np.loadtxt(f)


def load_height_weight() -> np.ndarray:
    """Columns height (cm) and weight (kg), shape (25000, 2) float64 (book chapter 3)."""
    with _path("height_weight.txt").open() as f:
        return np.loadtxt(f)


def load_old_faithful() -> np.ndarray:
    """Old Faithful eruptions: duration and waiting time (min), shape (272, 2) (chapters 4-5)."""
    with _path("old_faithful.txt").open() as f:
        return np.loadtxt(f)


def load_flower() -> np.ndarray:
    """A 64 x 64 RGB flower as float32 in [0, 1], shape (64, 64, 3) (book chapter 9)."""
    import matplotlib.image

    with _path("flower.png").open("rb") as f:
        return np.asarray(matplotlib.image.imread(f, format="png"), np.float32)[..., :3]
