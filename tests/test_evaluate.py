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
    # trained on the official 60,000 digits by `jaxgen run classifier` (99.59%); floor 99.3%
    assert evaluate.label_accuracy(ev, test_set.images, test_set.labels) >= 0.993


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


def test_precision_and_recall_of_a_set_against_itself_are_one():
    f = np.random.default_rng(0).normal(size=(300, 8))
    assert evaluate.precision_recall(f, f) == {"precision": 1.0, "recall": 1.0}


def test_precision_recall_match_a_brute_force_reference():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(200, 5)), rng.normal(0.7, 1.2, size=(150, 5))
    d = lambda a, b: np.linalg.norm(a[:, None] - b[None], axis=-1)  # noqa: E731
    r_real = np.sort(d(real, real), 1)[:, 3]  # k = 3, index 0 is the point itself
    r_fake = np.sort(d(fake, fake), 1)[:, 3]
    want_p = np.mean(np.any(d(fake, real) <= r_real[None], 1))
    want_r = np.mean(np.any(d(real, fake) <= r_fake[None], 1))
    got = evaluate.precision_recall(real, fake, k=3)
    # float32 distances: a point within ~1e-6 of a ball's edge could flip; none is here
    assert got["precision"] == pytest.approx(want_p, abs=1 / 150)
    assert got["recall"] == pytest.approx(want_r, abs=1 / 200)


@pytest.fixture(scope="module")
def digit_features(ev, test_set):
    return evaluate.features(ev, test_set.images[:2000]), test_set


def test_precision_falls_for_noised_digits_and_recall_for_missing_digits(ev, digit_features):
    ref, test_set = digit_features
    clean = test_set.images[2000:4000]
    base = evaluate.precision_recall(ref, evaluate.features(ev, clean))
    rng = np.random.default_rng(0)
    noisy = evaluate.precision_recall(
        ref, evaluate.features(ev, np.clip(clean + rng.normal(size=clean.shape), 0, 1)))
    static = evaluate.precision_recall(
        ref, evaluate.features(ev, rng.uniform(size=clean.shape)))
    # fidelity drops. In this CNN's feature space Gaussian noise shrinks features towards a
    # region that low-norm real digits' k-NN balls still cover, so the drop is modest (measured
    # 0.88 -> 0.85 at sigma 1, one SE ~0.008) while recall collapses (0.90 -> 0.0005);
    # pure noise images fall further (0.69)
    assert noisy["precision"] < base["precision"] - 0.02
    assert static["precision"] < base["precision"] - 0.1
    assert noisy["recall"] < 0.05
    keep = test_set.labels[2000:4000] < 5  # only digits 0-4: half of the data's modes
    partial = evaluate.precision_recall(ref, evaluate.features(ev, clean[keep]))
    assert partial["recall"] < base["recall"] - 0.2  # diversity drops
    assert partial["precision"] > base["precision"] - 0.05  # what is there is still real


def test_judge_against_test_puts_the_real_data_floor_beside_fid(ev, test_set, tmp_path,
                                                                monkeypatch):
    monkeypatch.setenv("JAXGEN_CACHE", str(tmp_path))
    train = load_mnist("train").images
    # random digits score near their floor (a contiguous slice need not: MNIST is ordered by
    # writer groups, and the last 500 training digits score 183 against a floor of 27)
    real = train[np.random.default_rng(1).choice(len(train), 500, replace=False)]
    noise = np.random.default_rng(0).normal(size=real.shape)
    judged = [evaluate.judge_against_test(ev, np.clip(real + s * noise, 0, 1))
              for s in (0.0, 0.2, 0.4)]
    floor = judged[0]["floor"]
    assert floor["n"] == 500 and len(list(tmp_path.glob("floor-*.json"))) == 1  # cached
    assert judged[0]["fid"] < 1.5 * floor["fid"] and judged[0]["precision"] > 0.8
    fids = [j["fid"] for j in judged]
    assert fids[0] < fids[1] < fids[2]  # monotone in the noise level
    assert evaluate.real_data_floor(ev, 500) == floor  # read back from the cache


@pytest.mark.parametrize("images,msg", [
    (np.zeros((4, 32, 32)), r"images must have shape \(N, 28, 28"),
    (np.full((4, 28, 28), np.nan), "images must be finite"),
    (np.full((4, 28, 28), 255.0), r"images must be in \[0, 1\]"),
    (np.zeros((3, 28, 28)), "at least k \\+ 1 = 4 samples"),
])
def test_judge_names_bad_samples(ev, images, msg):
    with pytest.raises(ValueError, match=msg):
        evaluate.judge_against_test(ev, images)


def test_precision_recall_names_bad_features():
    with pytest.raises(ValueError, match="real_features must hold at least k \\+ 1 = 4"):
        evaluate.precision_recall(np.zeros((3, 2)), np.zeros((10, 2)))
    with pytest.raises(ValueError, match="fake_features must have 2 features"):
        evaluate.precision_recall(np.zeros((10, 2)), np.zeros((10, 3)))
