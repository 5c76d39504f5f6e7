import numpy as np
import pytest
import scipy.linalg

from jaxgen import evaluate
from jaxgen.data import load_mnist


@pytest.fixture(scope="module")
def ev():
    return evaluate.load()


@pytest.fixture(scope="module")
def test_set():
    return load_mnist("test", source="bundled")


def test_shipped_evaluator_meets_the_accuracy_floor(ev, test_set):
    # trained on the 5,000 bundled digits by `jaxgen run classifier`; floor 97%
    assert evaluate.label_accuracy(ev, test_set.images, test_set.labels) >= 0.97


def test_frechet_distance_against_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6)) + 0.5
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    want = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s_a + s_b)
            - 2 * np.trace(scipy.linalg.sqrtm(s_a @ s_b)).real)
    np.testing.assert_allclose(evaluate.frechet_distance(a, b), want, rtol=1e-8)


def test_fid_is_zero_for_a_set_against_itself_and_grows_with_noise(ev, test_set):
    x = test_set.images[:1000]
    assert abs(evaluate.fid(ev, x, x)) < 1e-3  # vs ~100 between test halves
    noise = np.random.default_rng(0).normal(size=x.shape)
    fids = [evaluate.fid(ev, x, np.clip(x + s * noise, 0, 1)) for s in (0.1, 0.3, 0.6)]
    assert 0 < fids[0] < fids[1] < fids[2]


def test_bad_images_shape(ev):
    with pytest.raises(ValueError, match="images must have shape"):
        evaluate.features(ev, np.zeros((4, 32, 32)))
