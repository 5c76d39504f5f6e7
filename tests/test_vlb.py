import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from jaxgen import diffusion, kl
from jaxgen.diffusion import ddpm, vlb

SMALL = diffusion.linear(T=50, beta_end=0.2)  # a short chain, so exact sums are cheap


def test_prior_kl_is_the_gaussian_kl_per_pixel_summed():
    x0 = jax.random.uniform(jax.random.key(0), (3, 4, 4, 1))
    ab = float(SMALL.alpha_bars[-1])
    expect = kl.normal(np.sqrt(ab) * x0, np.sqrt(1 - ab), 0.0, 1.0).reshape(3, -1).sum(1)
    np.testing.assert_allclose(vlb.prior_kl(x0, SMALL), expect, rtol=1e-5)


def test_decoder_nll_integrates_the_gaussian_over_each_bin():
    x0 = jnp.array([[0.0, 10 / 255, 128 / 255, 1.0]])
    mean, var = jnp.array([[0.01, 0.05, 0.5, 0.98]]), 0.002
    sd, h = np.sqrt(var), 0.5 / 255
    x, m = np.asarray(x0[0], np.float64), np.asarray(mean[0], np.float64)
    upper = np.where(x >= 1 - h, 1.0, stats.norm.cdf(x + h, m, sd))
    lower = np.where(x <= h, 0.0, stats.norm.cdf(x - h, m, sd))
    np.testing.assert_allclose(vlb.decoder_nll(x0, mean, var), [-np.log(upper - lower).sum()],
                               rtol=1e-4)


def test_term_is_the_kl_between_posterior_and_model_step():
    x0 = jax.random.uniform(jax.random.key(1), (2, 3, 3, 1))
    eps_fn = lambda x, t: 0.3 * x  # noqa: E731  (any network)
    t, key = jnp.array([7, 30]), jax.random.key(2)
    got = vlb.term(eps_fn, x0, t, SMALL, key=key)
    # by hand: the book's reverse mean against the posterior mean, variance beta~_t both
    x_t = ddpm.q_sample(x0, t, jax.random.normal(key, x0.shape), SMALL)
    b, a, ab = (SMALL.betas[t][:, None, None, None], SMALL.alphas[t][:, None, None, None],
                SMALL.alpha_bars[t][:, None, None, None])
    mu_theta = (x_t - b / jnp.sqrt(1 - ab) * eps_fn(x_t, t)) / jnp.sqrt(a)
    mu_q, var_q = ddpm.posterior(x0, x_t, t, SMALL)
    sd = jnp.sqrt(jnp.broadcast_to(var_q, x0.shape))
    expect = kl.normal(mu_q, sd, mu_theta, sd).reshape(2, -1).sum(1)
    np.testing.assert_allclose(got, expect, rtol=1e-4)


def _point_mass_eps(value, offset=0.0):
    """The exact eps for data that is `value` everywhere, plus a constant error `offset`."""
    def eps_fn(x, t):
        ab = SMALL.alpha_bars[t][:, None, None, None]
        return (x - jnp.sqrt(ab) * value) / jnp.sqrt(1 - ab) + offset
    return eps_fn


def test_sampled_timesteps_estimate_the_exact_sum_without_bias():
    # a constant eps error makes each L_{t-1} independent of the noise draw, so only the
    # sampling of t is random; the estimate must lie within 4 standard errors of the exact sum
    x0 = jnp.full((2, 4, 4, 1), 100 / 255)
    eps_fn = _point_mass_eps(100 / 255, offset=jnp.array([0.05, 0.2])[:, None, None, None])
    key = jax.random.key(4)
    exact = vlb.bits_per_dim(eps_fn, x0, SMALL, n_t=None, key=key)
    estimate = vlb.bits_per_dim(eps_fn, x0, SMALL, n_t=4000, key=key)
    terms = np.stack([vlb.term(eps_fn, x0, jnp.full((2,), t), SMALL, key=key)
                      for t in range(1, 51)])  # (T, B) nats
    se_bits = 50 * terms.std(0) / np.sqrt(4000) / (16 * np.log(2))
    assert np.all(np.abs(np.asarray(estimate - exact)) < 4 * se_bits), (estimate, exact, se_bits)
    np.testing.assert_allclose(exact, (vlb.prior_kl(x0, SMALL) + terms.sum(0)) / (16 * np.log(2)),
                               rtol=1e-5)
    assert exact[1] > exact[0] > 0  # a larger eps error costs more bits


def test_exact_eps_of_a_point_mass_leaves_only_prior_and_decoder_terms():
    point = jnp.full((1, 2, 2, 1), 0.4)
    eps_fn = _point_mass_eps(0.4)
    t = jnp.arange(2, 51)
    x0 = jnp.broadcast_to(point, (49, 2, 2, 1))
    np.testing.assert_allclose(vlb.term(eps_fn, x0, t, SMALL, key=jax.random.key(5)), 0.0,
                               atol=1e-4)
    bpd = vlb.bits_per_dim(eps_fn, point, SMALL, n_t=None, key=jax.random.key(5))
    mu_1 = 0.4  # the exact reverse mean at t=1 is x0 itself
    expect = (vlb.prior_kl(point, SMALL) + vlb.decoder_nll(point, jnp.full_like(point, mu_1),
                                                           SMALL.betas[1])) / (4 * np.log(2))
    np.testing.assert_allclose(bpd, expect, rtol=1e-3)


def test_bits_per_dim_rejects_a_non_positive_n_t():
    import pytest
    with pytest.raises(ValueError, match="n_t must be a positive int or None, got 0"):
        vlb.bits_per_dim(lambda x, t: x, jnp.zeros((1, 2, 2, 1)), SMALL, n_t=0,
                         key=jax.random.key(0))
