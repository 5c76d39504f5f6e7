import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as s

from jaxgen import kl, mvn, normal
from jaxgen.data import load_height_weight


def spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


@settings(max_examples=25, deadline=None)
@given(seed=s.integers(0, 10_000), d=s.integers(1, 6))
def test_log_prob_matches_scipy(seed, d):
    rng = np.random.default_rng(seed)
    mean, cov = rng.normal(size=d), spd(rng, d)
    x = rng.normal(size=(20, d)) * 2
    np.testing.assert_allclose(mvn.log_prob(x, mean, cov),
                               st.multivariate_normal(mean, cov).logpdf(x).reshape(20),
                               rtol=1e-4, atol=1e-4)


def test_x64_tight_and_batched_covariances(x64):
    rng = np.random.default_rng(1)
    covs = np.stack([spd(rng, 3) for _ in range(4)])
    means = rng.normal(size=(4, 3))
    x = rng.normal(size=(7, 1, 3))
    got = mvn.log_prob(x, means, covs)
    assert got.shape == (7, 4) and got.dtype == jnp.float64
    want = np.stack([st.multivariate_normal(means[k], covs[k]).logpdf(x[:, 0])
                     for k in range(4)], 1)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_book_pdf_value():
    # ../shared/reference.md, chapter 3: pdf at (0, 0) with mu=(1, 2), Sigma=I
    np.testing.assert_allclose(mvn.pdf(np.zeros(2), np.array([1.0, 2.0]), np.eye(2)),
                               0.013064233284684921, rtol=1e-6)


def test_book_height_weight_mle(x64):
    mean, cov = mvn.mle(load_height_weight())
    np.testing.assert_allclose(mean, [172.70250854, 57.6422088], rtol=1e-9)
    np.testing.assert_allclose(cov, [[23.330517821, 12.846850871], [12.846850871, 27.975468013]],
                               rtol=1e-9)


def test_sample_moments():
    mean, cov = np.array([0.5, -0.2]), np.array([[2.0, 0.3], [0.3, 0.5]])
    x = mvn.sample(mean, cov, (100_000,), key=jax.random.key(0))
    assert x.shape == (100_000, 2)
    np.testing.assert_allclose(x.mean(0), mean, atol=0.02)  # se ~ 0.0045
    np.testing.assert_allclose(np.cov(np.asarray(x).T), cov, atol=0.03)


@pytest.mark.parametrize("cov,msg", [
    (np.array([[1.0, 0.5], [0.0, 1.0]]), "symmetric"),
    (np.array([[1.0, 2.0], [2.0, 1.0]]), "positive definite"),
    (np.eye(3), r"cov must have shape \(\.\.\., D, D\) with D=2"),
])
def test_bad_covariance(cov, msg):
    with pytest.raises(ValueError, match=msg):
        mvn.log_prob(np.zeros(2), np.zeros(2), cov)


def test_shape_mismatch_names_x():
    with pytest.raises(ValueError, match=r"x must have shape"):
        mvn.log_prob(np.zeros((5, 3)), np.zeros(2), np.eye(2))


def test_jit_vmap():
    f = jax.jit(jax.vmap(mvn.log_prob, in_axes=(0, None, None)))
    x = jnp.ones((3, 2))
    np.testing.assert_allclose(f(x, jnp.zeros(2), jnp.eye(2)),
                               mvn.log_prob(x, jnp.zeros(2), jnp.eye(2)), rtol=1e-6)


# ----------------------------------------------------------------------------- KL


def test_discrete_book_values():
    # ../shared/reference.md, chapter 5 KL demo
    p = np.array([0.7, 0.3])
    np.testing.assert_allclose(kl.discrete(p, [0.6, 0.4]), 0.02160085414354654, rtol=1e-5)
    np.testing.assert_allclose(kl.discrete(p, [0.2, 0.8]), 0.5826853020432394, rtol=1e-5)
    assert float(kl.discrete(p, p)) == 0.0
    assert float(kl.discrete([1.0, 0.0], [0.5, 0.5])) == pytest.approx(np.log(2))


def test_discrete_rejects_non_probabilities():
    with pytest.raises(ValueError, match="q must sum to 1"):
        kl.discrete([0.5, 0.5], [0.5, 0.6])
    with pytest.raises(ValueError, match="p must be non-negative"):
        kl.discrete([1.5, -0.5], [0.5, 0.5])


def test_gaussian_kl_matches_monte_carlo():
    mu_p, s_p, mu_q, s_q = 0.5, 0.8, -0.3, 1.7
    mc = kl.monte_carlo(lambda k, n: normal.sample(mu_p, s_p, (n,), key=k),
                        lambda x: normal.log_prob(x, mu_p, s_p),
                        lambda x: normal.log_prob(x, mu_q, s_q), 400_000, key=jax.random.key(0))
    exact = kl.normal(mu_p, s_p, mu_q, s_q)
    # closed form by hand: log(1.7/0.8) + (0.64 + 0.64) / (2 * 2.89) - 0.5
    np.testing.assert_allclose(exact, np.log(1.7 / 0.8) + 1.28 / 5.78 - 0.5, rtol=1e-6)
    np.testing.assert_allclose(mc, exact, atol=0.01)  # MC standard error ~ 0.0015


def test_diag_and_logvar_forms_agree():
    rng = np.random.default_rng(0)
    mu, logvar = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    a = kl.standard_normal_from_logvar(mu, logvar)
    b = kl.diag_normal(mu, np.exp(0.5 * logvar), 0.0, 1.0)
    assert a.shape == (5,)
    np.testing.assert_allclose(a, b, rtol=1e-5)
    assert np.all(np.asarray(a) > 0)
    np.testing.assert_allclose(kl.diag_normal(np.zeros(3), np.ones(3), 0.0, 1.0), 0.0)
