"""MNIST from tensorflow-datasets, or the real digits bundled with jaxgen for offline use.

Images come back as float32 in [0, 1] with shape (N, 28, 28, 1) (NHWC, as Flax convolutions
expect), labels as int32 (N,).
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

log = logging.getLogger("jaxgen")

SPLITS = ("train", "test")
SOURCES = ("auto", "tfds", "bundled")


class MNIST(NamedTuple):
    images: np.ndarray  # (N, 28, 28, 1) float32 in [0, 1]
    labels: np.ndarray  # (N,) int32
    source: str  # where it came from: 'tfds' or 'bundled'


def _bundled(split: str) -> MNIST:
    root = resources.files("jaxgen.data") / "files" / "mnist"
    if split == "train":  # 5,000 training digits, 500 per class: 784 pixels then the label
        with (root / "mnist_5k.csv.gz").open("rb") as f:
            rows = np.loadtxt(gzip.open(f), delimiter=",", dtype=np.uint8)
        pixels, labels = rows[:, :784], rows[:, 784]
    else:  # the official test set in IDX format (16- and 8-byte headers)
        with (root / "t10k-images-idx3-ubyte.gz").open("rb") as f:
            pixels = np.frombuffer(gzip.open(f).read(), np.uint8, offset=16)
        with (root / "t10k-labels-idx1-ubyte.gz").open("rb") as f:
            labels = np.frombuffer(gzip.open(f).read(), np.uint8, offset=8)
    images = pixels.reshape(-1, 28, 28, 1).astype(np.float32) / 255.0
    return MNIST(images, labels.astype(np.int32), "bundled")


def _tfds_prepared(data_dir: str | None) -> bool:
    """Whether a prepared tfds MNIST exists (`<data_dir>/mnist/<version>/dataset_info.json`),
    found without importing tfds: asking tfds itself logs absl warnings about folders that do
    not exist and leaves temporary folders behind."""
    root = Path(data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")
    return any(root.expanduser().glob("mnist/*/dataset_info.json"))


@contextlib.contextmanager
def _private_tempdir():
    """Within the block, `tempfile` puts its folders in one private folder, removed on exit
    (tfds makes a `tmp*tfds` folder per call and never removes it)."""
    with tempfile.TemporaryDirectory(prefix="jaxgen-tfds-") as private:
        saved, tempfile.tempdir = tempfile.tempdir, private
        try:
            yield
        finally:
            tempfile.tempdir = saved


def _tfds(split: str, data_dir: str | None, download: bool) -> MNIST:
    import tensorflow_datasets as tfds

    # A data source needs no TensorFlow: it reads prepared array_record files by index.
    with _private_tempdir():
        source = tfds.data_source("mnist", split=split, data_dir=data_dir, download=download,
                                  builder_kwargs={"file_format": "array_record"})
        examples = [source[i] for i in range(len(source))]
    images = np.stack([e["image"] for e in examples]).astype(np.float32) / 255.0
    labels = np.asarray([e["label"] for e in examples], np.int32)
    return MNIST(images.reshape(-1, 28, 28, 1), labels, "tfds")


_said: set[str] = set()


def _log_fallback_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.info(message)


def load_mnist(split: str = "train", source: str = "auto", data_dir: str | None = None) -> MNIST:
    """Load an MNIST split.

    Args:
      split: 'train' or 'test'.
      source: 'tfds' (tensorflow-datasets, downloading where a network exists), 'bundled' (the
        real digits shipped with jaxgen: 5,000 training digits, 500 per class, and the official
        10,000-image test set), or 'auto': prepared tfds data if present, never downloading
        (offline, a download retries DNS for minutes), else bundled.
      data_dir: the tfds data directory; default `$TFDS_DATA_DIR` or tfds's own default.
    Returns:
      an `MNIST(images, labels, source)`; `source` says which was used.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR")
    if source == "bundled":
        return _bundled(split)
    if source == "tfds":
        return _tfds(split, data_dir, download=True)
    if not _tfds_prepared(data_dir):
        _log_fallback_once(f"MNIST: no prepared tfds data under "
                           f"{data_dir or '$TFDS_DATA_DIR or ~/tensorflow_datasets'}; "
                           f"using the digits bundled with jaxgen")
        return _bundled(split)
    try:
        data = _tfds(split, data_dir, download=False)
    except Exception as e:  # prepared but unreadable (or tfds unusable here): fall back
        _log_fallback_once(f"MNIST {split}: tfds data unreadable ({type(e).__name__}); using "
                           f"the digits bundled with jaxgen")
        return _bundled(split)
    log.info("MNIST %s: tfds (%d images)", split, len(data.labels))
    return data
