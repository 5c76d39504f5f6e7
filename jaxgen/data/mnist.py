"""MNIST as shipped with jaxgen (the official 60,000 training and 10,000 test images, offline),
or from tensorflow-datasets.

Images come back as float32 in [0, 1] with shape (N, 28, 28, 1) (NHWC, as Flax convolutions
expect), labels as int32 (N,).
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import socket
import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

log = logging.getLogger("jaxgen")

SPLITS = ("train", "test", "train-5k")
SOURCES = ("bundled", "auto", "tfds")


class MNIST(NamedTuple):
    images: np.ndarray  # (N, 28, 28, 1) float32 in [0, 1]
    labels: np.ndarray  # (N,) int32
    source: str  # where it came from: 'tfds' or 'bundled'


def _idx(root, name: str, offset: int) -> np.ndarray:
    with (root / name).open("rb") as f:
        return np.frombuffer(gzip.open(f).read(), np.uint8, offset=offset)


def _bundled(split: str) -> MNIST:
    root = resources.files("jaxgen.data") / "files" / "mnist"
    if split == "train-5k":  # 5,000 training digits, 500 per class: 784 pixels then the label
        with (root / "mnist_5k.csv.gz").open("rb") as f:
            rows = np.loadtxt(gzip.open(f), delimiter=",", dtype=np.uint8)
        pixels, labels = rows[:, :784], rows[:, 784]
    else:  # the official IDX files (16- and 8-byte headers)
        prefix = "train" if split == "train" else "t10k"
        pixels = _idx(root, f"{prefix}-images-idx3-ubyte.gz", 16)
        labels = _idx(root, f"{prefix}-labels-idx1-ubyte.gz", 8)
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


TFDS_HOST = "storage.googleapis.com"  # where tfds downloads MNIST from


def _reachable(host: str, port: int = 443, timeout: float = 5.0) -> bool:
    """Whether a TCP connection to host:port opens within `timeout` seconds, DNS included (a
    resolver that cannot answer is given up on after `timeout`, not its own minutes)."""
    result: list[bool] = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


class DataUnavailable(RuntimeError):
    """MNIST cannot be had from the asked source on this machine."""


_said: set[str] = set()


def _log_fallback_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.info(message)


def load_mnist(split: str = "train", source: str = "bundled",
               data_dir: str | None = None) -> MNIST:
    """Load an MNIST split.

    Args:
      split: 'train' (the official 60,000), 'test' (the official 10,000) or 'train-5k' (5,000
        of the training digits, 500 per class, sorted by label: the `--quick` presets' set).
      source: 'bundled' (the files shipped with jaxgen, offline), 'tfds' (tensorflow-datasets,
        downloading where a network exists), or 'auto': prepared tfds data if present, never
        downloading (offline, a download retries DNS for minutes), else bundled.
      data_dir: the tfds data directory; default `$TFDS_DATA_DIR` or tfds's own default.
    Returns:
      an `MNIST(images, labels, source)`; `source` says which was used.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR")
    if source == "bundled" or split == "train-5k":
        if split == "train-5k" and source == "tfds":
            raise ValueError("split 'train-5k' is bundled with jaxgen only; use source='bundled'")
        return _bundled(split)
    if source == "tfds":
        if not _tfds_prepared(data_dir) and not _reachable(TFDS_HOST):
            raise DataUnavailable(
                f"source='tfds': no prepared MNIST under "
                f"{data_dir or '$TFDS_DATA_DIR or ~/tensorflow_datasets'} and {TFDS_HOST} is "
                f"unreachable (offline?); use source='bundled' (the default: the official files "
                f"ship with jaxgen) or prepare tfds data on a machine with a network")
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
