import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as s

from jaxgen import bernoulli, normal
from jaxgen.data import load_height

finite = dict(allow_nan=False, allow_infinity=False)


@settings(max_examples=50, deadline=None)
@given(x=s.floats(-50, 50, **finite), mu=s.floats(-10, 10, **finite), sigma=s.floats(0.1, 20))
def test_log_prob_pdf_cdf_match_scipy(x, mu, sigma):
    np.testing.assert_allclose(normal.log_prob(x, mu, sigma), st.norm.logpdf(x, mu, sigma),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(normal.pdf(x, mu, sigma), st.norm.pdf(x, mu, sigma),
                               rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(normal.cdf(x, mu, sigma), st.norm.cdf(x, mu, sigma), atol=1e-6)


def test_x64_is_float64_and_tight(x64):
    x = np.linspace(-5, 5, 101)
    lp = normal.log_prob(x, 0.3, 1.7)
    assert lp.dtype == jnp.float64
    np.testing.assert_allclose(lp, st.norm.logpdf(x, 0.3, 1.7), rtol=1e-13)


def test_float32_by_default():
    assert normal.log_prob(np.arange(3.0), 0.0, 1.0).dtype == jnp.float32


def test_book_heights_mle_and_probabilities():
    # ../shared/reference.md, chapter 2
    mu, sigma = normal.mle(load_height())
    np.testing.assert_allclose(mu, 172.7025085367, rtol=1e-6)
    np.testing.assert_allclose(sigma, 4.8301674734, rtol=1e-5)
    np.testing.assert_allclose(normal.cdf(160, mu, sigma), 0.004271406830855, rtol=1e-3)
    np.testing.assert_allclose(1 - normal.cdf(180, mu, sigma), 0.06541774339950823, rtol=1e-4)


def test_sample_moments_and_determinism():
    key = jax.random.key(0)
    x = normal.sample(3.0, 2.0, (200_000,), key=key)
    assert x.shape == (200_000,)
    # standard errors: 2/sqrt(n) ~ 0.0045 for the mean, ~0.0032 for sigma
    np.testing.assert_allclose(x.mean(), 3.0, atol=0.03)
    np.testing.assert_allclose(x.std(), 2.0, atol=0.02)
    np.testing.assert_array_equal(x, normal.sample(3.0, 2.0, (200_000,), key=key))
    assert normal.sample(jnp.zeros(3), 1.0, (5, 1), key=key).shape == (5, 3)


def test_jit_and_vmap():
    f = jax.jit(jax.vmap(normal.log_prob, in_axes=(0, None, 0)))
    x, sig = jnp.arange(4.0), jnp.arange(1.0, 5.0)
    np.testing.assert_allclose(f(x, 1.0, sig), st.norm.logpdf(np.arange(4.0), 1.0, sig), rtol=1e-5)


@pytest.mark.parametrize("sigma", [0.0, -1.0, np.nan])
def test_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        normal.log_prob(0.0, 0.0, sigma)
    with pytest.raises(ValueError, match="sigma"):
        normal.sample(0.0, sigma, (3,), key=jax.random.key(0))


def test_mle_rejects_nan():
    with pytest.raises(ValueError, match="x must be finite"):
        normal.mle(np.array([1.0, np.nan]))


def test_bernoulli_against_scipy():
    theta = np.array([0.0, 0.2, 0.7, 1.0])
    for x in (0, 1):
        np.testing.assert_allclose(bernoulli.log_prob(x, theta), st.bernoulli.logpmf(x, theta),
                                   rtol=1e-6)
    flips = np.array([1, 0, 1, 1, 0, 1, 1, 1])
    np.testing.assert_allclose(bernoulli.mle(flips), 0.75)
    with pytest.raises(ValueError, match="theta"):
        bernoulli.log_prob(1, 1.5)
    with pytest.raises(ValueError, match="0 and 1"):
        bernoulli.mle(np.array([0, 2]))
