import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import bernoulli, estimation, mvn, normal


def test_mle_ddof_matches_numpy_and_the_books_cov():
    x = np.random.default_rng(0).normal(size=(50, 3))
    mu, sigma = normal.mle(x, ddof=1)
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-6)
    np.testing.assert_allclose(sigma, x.std(0, ddof=1), rtol=1e-6)
    np.testing.assert_allclose(normal.mle(x)[1], x.std(0), rtol=1e-6)  # ddof 0 by default
    _, cov = mvn.mle(x, ddof=1)
    np.testing.assert_allclose(cov, np.cov(x.T), rtol=1e-5)  # what the book computes
    with pytest.raises(ValueError, match=r"ddof must be an int in 0..N-1 = 0..49, got 50"):
        normal.mle(x, ddof=50)
    with pytest.raises(ValueError, match="ddof must be an int"):
        mvn.mle(x, ddof=1.5)


@pytest.mark.parametrize("n", [2, 5, 20])
def test_variance_mle_bias_is_the_closed_form(x64, n):
    # E[sigma_hat^2] = (N - 1)/N sigma^2 for ddof 0, sigma^2 for ddof 1 (sigma^2 = 4 here)
    sampler = lambda k, m: 2.0 * jax.random.normal(k, (m,))  # noqa: E731
    for ddof, want in ((0, -4.0 / n), (1, 0.0)):
        est = estimation.simulate(lambda x, d=ddof: normal.mle(x, ddof=d)[1] ** 2, sampler, n,
                                  40_000, key=jax.random.key(n))
        r = estimation.bias_variance(est, 4.0)
        assert abs(float(r["bias"]) - want) < 4 * float(r["bias_se"])
        # variance of the sample variance: 2 sigma^4 (N-1) / (N - ddof)^2 for Gaussian data
        np.testing.assert_allclose(r["variance"], 2 * 16 * (n - 1) / (n - ddof) ** 2, rtol=0.05)
        np.testing.assert_allclose(r["mse"], r["bias"] ** 2 + r["variance"], rtol=1e-3)


def test_bernoulli_mle_variance_is_p_one_minus_p_over_n(x64):
    p, n = 0.3, 40
    est = estimation.simulate(bernoulli.mle, lambda k, m: jax.random.bernoulli(k, p, (m,)), n,
                              40_000, key=jax.random.key(0))
    r = estimation.bias_variance(est, p)
    assert abs(float(r["bias"])) < 4 * float(r["bias_se"])
    np.testing.assert_allclose(r["variance"], p * (1 - p) / n, rtol=0.03)  # ~0.7% SE


def test_consistency_mse_falls_as_one_over_n(x64):
    sampler = lambda k, m: 1.0 + jax.random.normal(k, (m,))  # noqa: E731
    mses = [float(estimation.bias_variance(estimation.simulate(
        lambda x: jnp.mean(x), sampler, n, 20_000, key=jax.random.key(n)), 1.0)["mse"])
        for n in (10, 100, 1000)]
    slope = np.polyfit(np.log([10, 100, 1000]), np.log(mses), 1)[0]
    assert abs(slope + 1) < 0.05  # MSE = sigma^2 / N: the spread falls as N^-1/2


def test_simulate_names_bad_arguments():
    with pytest.raises(ValueError, match="trials must be an int >= 2"):
        estimation.simulate(jnp.mean, lambda k, m: jnp.zeros(m), 5, 1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="n must be a positive int"):
        estimation.simulate(jnp.mean, lambda k, m: jnp.zeros(m), 0, 5, key=jax.random.key(0))
