import logging
import tempfile

import jax
import numpy as np
import pytest

from jaxgen.data import batch_indices, batches, load_mnist, mnist

OFFICIAL_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


OFFICIAL_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_bundled_train_and_test():
    train = load_mnist("train")  # bundled is the default source: the official 60,000
    assert train.images.shape == (60000, 28, 28, 1) and train.images.dtype == np.float32
    assert train.labels.dtype == np.int32 and train.source == "bundled"
    assert 0.0 <= train.images.min() and train.images.max() == 1.0
    np.testing.assert_array_equal(np.bincount(train.labels), OFFICIAL_TRAIN_COUNTS)
    test = load_mnist("test", source="bundled")
    assert test.images.shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(test.labels), OFFICIAL_TEST_COUNTS)
    assert 0.1 < test.images.mean() < 0.15  # MNIST's mean intensity is ~0.13
    # the quick presets' 5,000: 500 per class, each among the 60,000 with the same label
    small = load_mnist("train-5k")
    np.testing.assert_array_equal(np.bincount(small.labels), [500] * 10)
    index = {(img.tobytes(), int(y)) for img, y in zip(train.images, train.labels,
                                                       strict=True)}
    assert all((img.tobytes(), int(y)) in index for img, y in zip(small.images, small.labels,
                                                                  strict=True))
    with pytest.raises(ValueError, match="train-5k"):
        load_mnist("train-5k", source="tfds")


def test_auto_falls_back_to_bundled_without_prepared_tfds(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    data = load_mnist("test", source="auto")
    assert data.source == "bundled" and len(data.labels) == 10000


def test_auto_fallback_is_one_info_line_no_warnings_and_no_temporaries(tmp_path, monkeypatch,
                                                                         caplog, capfd):
    from jaxgen.data import mnist

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # the system temp folder, watched
    monkeypatch.setattr(mnist, "_said", set())
    with caplog.at_level(logging.INFO):
        for split in ("test", "test", "train"):
            assert load_mnist(split, source="auto").source == "bundled"
    assert list(temp.iterdir()) == []  # tfds used to leave a tmp*tfds folder per call
    notes = [r for r in caplog.records if r.name == "jaxgen"]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO and "bundled" in notes[0].message
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "absl" not in capfd.readouterr().err


def test_tfds_path_with_mock_data(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(mnist, "_reachable", lambda host: True)  # mock_data needs no network
    with tfds.testing.mock_data(num_examples=24):
        data = load_mnist("train", source="tfds")
    assert list(temp.iterdir()) == []  # whatever tfds put in the temp folder is removed
    assert data.source == "tfds"
    assert data.images.shape == (24, 28, 28, 1) and data.images.dtype == np.float32
    assert data.labels.shape == (24,) and set(np.unique(data.labels)) <= set(range(10))
    assert 0.0 <= data.images.min() and data.images.max() <= 1.0


@pytest.mark.parametrize("kwargs,msg", [(dict(split="validation"), "split must be one of"),
                                        (dict(source="web"), "source must be one of")])
def test_bad_arguments(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        load_mnist(**kwargs)


def test_batches_shuffle_by_key_and_drop_the_last_partial_batch():
    x = np.arange(103)
    a = batch_indices(103, 10, key=jax.random.key(0))
    assert a.shape == (10, 10) and len(np.unique(a)) == 100
    np.testing.assert_array_equal(a, batch_indices(103, 10, key=jax.random.key(0)))
    assert not np.array_equal(a, batch_indices(103, 10, key=jax.random.key(1)))
    got = [b for (b,) in batches((x,), 10, start=3, key=jax.random.key(0))]
    assert len(got) == 7
    np.testing.assert_array_equal(got[0], x[a[3]])
    with pytest.raises(ValueError, match="batch_size"):
        batch_indices(5, 10, key=jax.random.key(0))


def test_tfds_offline_fails_in_seconds_with_one_line(tmp_path, monkeypatch):
    """Offline, tfds itself retried DNS for ~200 s and raised a raw ConnectionError."""
    import time

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setattr(mnist, "TFDS_HOST", "jaxgen-no-such-host.invalid")
    t0 = time.perf_counter()
    with pytest.raises(mnist.DataUnavailable, match="source='bundled'") as err:
        load_mnist("test", source="tfds")
    assert time.perf_counter() - t0 < 15 and "\n" not in str(err.value)
    assert not (tmp_path / "tfds").exists()  # nothing half-downloaded is left
