"""Atomic output: a file is either absent or complete, never half-written."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _atomic_write(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are for sharing
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):  # numpy and jax arrays and scalars
        return _jsonable(np.asarray(x).tolist())
    if isinstance(x, float) and not np.isfinite(x):
        return None  # JSON has no NaN/inf
    return x


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` (arrays allowed; NaN becomes null) as indented JSON, atomically."""
    text = json.dumps(_jsonable(obj), indent=2) + "\n"
    return _atomic_write(Path(path), lambda f: f.write(text.encode()))


def figure(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float] = (5.0, 4.0), **kw):
    """A matplotlib (Figure, axes) pair without pyplot, so no GUI backend is ever touched.

    `size` is the size of one panel in inches.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    return fig, fig.subplots(nrows, ncols, **kw)


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG, atomically."""
    return _atomic_write(Path(path), lambda f: fig.savefig(f, format="png", dpi=dpi))
