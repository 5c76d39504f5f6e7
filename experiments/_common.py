"""Helpers shared by the experiment scripts (plotting only; the maths lives in jaxgen)."""

from __future__ import annotations

import numpy as np


def grid2d(xlim: tuple[float, float], ylim: tuple[float, float], n: int = 150):
    """A mesh for contour plots: (X, Y) each (n, n), and the points as an (n*n, 2) array."""
    X, Y = np.meshgrid(np.linspace(*xlim, n), np.linspace(*ylim, n))
    return X, Y, np.stack([X.ravel(), Y.ravel()], axis=1)


def padded_limits(x: np.ndarray, pad: float = 0.1) -> list[tuple[float, float]]:
    """Per-column (lo, hi) limits of the data widened by `pad` of the range."""
    lo, hi = x.min(0), x.max(0)
    span = hi - lo
    return [(float(a), float(b)) for a, b in zip(lo - pad * span, hi + pad * span, strict=True)]
