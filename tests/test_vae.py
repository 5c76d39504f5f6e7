import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.stats as st

from jaxgen import hvae, kl, normal, vae
from jaxgen.data import load_mnist
from jaxgen.experiments.vae import make_loss
from jaxgen.train import train

KEY = jax.random.key(0)


def n_params(params):
    return sum(p.size for p in jax.tree_util.tree_leaves(params))


def test_parameter_counts_match_the_book():
    x = jnp.zeros((1, 784))
    assert n_params(vae.VAE().init(KEY, x, KEY)) == 326_824
    assert n_params(hvae.HVAE().init(KEY, x, KEY)) == 174_084


def test_reconstruction_terms_against_scipy():
    rng = np.random.default_rng(0)
    x = rng.random((3, 784)).astype(np.float32)
    logits = rng.normal(size=(3, 784)).astype(np.float32)
    mean = 1 / (1 + np.exp(-logits.astype(np.float64)))
    gauss = st.norm.logpdf(x, mean, 1.0).sum(1)
    np.testing.assert_allclose(vae.reconstruction(x, logits, "gaussian"), -gauss, rtol=1e-5)
    xb = (x > 0.5).astype(np.float32)
    bern = st.bernoulli.logpmf(xb, mean).sum(1)
    np.testing.assert_allclose(vae.reconstruction(xb, logits, "bernoulli"), -bern, rtol=1e-5)


def test_kl_term_matches_monte_carlo():
    mu, logvar = jnp.array([[0.5, -1.0, 0.2]]), jnp.array([[-0.5, 0.3, 0.0]])
    sd = jnp.exp(0.5 * logvar)
    mc = kl.monte_carlo(KEY, lambda k, n: normal.sample(k, mu, sd, (n, 3)),
                        lambda z: normal.log_prob(z, mu, sd).sum(-1),
                        lambda z: normal.log_prob(z).sum(-1), 400_000)
    np.testing.assert_allclose(vae.kl(mu, logvar)[0], mc, atol=0.01)


def test_book_loss_is_twice_the_gaussian_neg_elbo_without_constant():
    rng = np.random.default_rng(1)
    x, logits = rng.random((4, 784)), rng.normal(size=(4, 784))
    mu, logvar = rng.normal(size=(4, 20)), rng.normal(size=(4, 20))
    neg_elbo = vae.reconstruction(x, logits) + vae.kl(mu, logvar)
    np.testing.assert_allclose(vae.book_loss(x, logits, mu, logvar),
                               2 * (neg_elbo - 392 * math.log(2 * math.pi)), rtol=1e-5)


def test_iwae_is_tighter_than_the_elbo_and_deterministic():
    model = vae.VAE(hidden=32, latent=4)
    x = load_mnist("test", source="bundled").images[:64].reshape(-1, 784)
    params = model.init(KEY, x[:1], KEY)
    neg_elbo = jax.jit(lambda k: jnp.mean(vae.neg_elbo(model, params, k, x)))
    elbo = np.mean([neg_elbo(jax.random.key(i)) for i in range(20)])
    iwae_fn = jax.jit(lambda key: vae.iwae_nll(model, params, key, x, k=100))
    iwae = iwae_fn(KEY)
    assert iwae.shape == (64,)
    assert float(jnp.mean(iwae)) < elbo
    np.testing.assert_array_equal(iwae, iwae_fn(KEY))
    h = hvae.HVAE(hidden=32, latent1=4, latent2=4)
    hp = h.init(KEY, x[:1], KEY)
    t = hvae.terms(h.apply(hp, x, KEY), x)
    assert np.all(np.asarray(t["kl1"]) >= 0) and np.all(np.asarray(t["kl2"]) >= 0)
    h_iwae = jax.jit(lambda key: hvae.iwae_nll(h, hp, key, x, k=10))
    assert np.all(np.isfinite(np.asarray(h_iwae(KEY))))


def test_tiny_vae_loss_falls():
    x = load_mnist("train", source="bundled").images[:640].reshape(-1, 784)
    model = vae.VAE(hidden=64, latent=8)
    params = model.init(KEY, x[:1], KEY)
    _, hist = train(make_loss(model, "gaussian", book=True), params, optax.adam(1e-3), (x,),
                    key=KEY, epochs=4, batch_size=32)
    assert hist[-1]["loss"] < 0.8 * hist[0]["loss"]
