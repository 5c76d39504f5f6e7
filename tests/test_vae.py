import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.stats as st
from scipy.integrate import trapezoid

from jaxgen import hvae, kl, normal, vae
from jaxgen.data import load_mnist
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
    mc = kl.monte_carlo(lambda k, n: normal.sample(mu, sd, (n, 3), key=k),
                        lambda z: normal.log_prob(z, mu, sd).sum(-1),
                        lambda z: normal.log_prob(z).sum(-1), 400_000, key=KEY)
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
    neg_elbo = jax.jit(lambda k: jnp.mean(vae.neg_elbo(model, params, x, key=k)))
    elbo = np.mean([neg_elbo(jax.random.key(i)) for i in range(20)])
    iwae_fn = jax.jit(lambda key: vae.iwae_nll(model, params, x, k=100, key=key))
    iwae = iwae_fn(KEY)
    assert iwae.shape == (64,)
    assert float(jnp.mean(iwae)) < elbo
    np.testing.assert_array_equal(iwae, iwae_fn(KEY))
    h = hvae.HVAE(hidden=32, latent1=4, latent2=4)
    hp = h.init(KEY, x[:1], KEY)
    t = hvae.terms(h.apply(hp, x, KEY), x)
    assert np.all(np.asarray(t["kl1"]) >= 0) and np.all(np.asarray(t["kl2"]) >= 0)


def _hvae_exact_nll(model, params, x):
    """-log p(x) of an HVAE with 1-D z1 and z2, by the trapezoid rule on a grid:
    p(x) = int int N(x; sigmoid(dec1(z1)), I) N(z1; dec2(z2), 1) N(z2; 0, 1) dz1 dz2."""
    z2 = np.linspace(-9, 9, 721)
    z1 = np.linspace(-12, 12, 961)
    dec1 = lambda m, z: m.decoder1(z)  # noqa: E731
    dec2 = lambda m, z: m.decoder2(z)  # noqa: E731
    mean_x = np.asarray(jax.nn.sigmoid(model.apply(params, z1[:, None], method=dec1)))
    z1_hat = np.asarray(model.apply(params, z2[:, None], method=dec2))[:, 0]  # (n2,)
    log_px = st.norm.logpdf(x[:, None, :], mean_x[None]).sum(-1)  # (B, n1)
    log_joint = (log_px[:, None, :] + st.norm.logpdf(z1[None, :], z1_hat[:, None])[None]
                 + st.norm.logpdf(z2)[None, :, None])  # (B, n2, n1)
    shift = log_joint.max(axis=(1, 2), keepdims=True)
    inner = trapezoid(np.exp(log_joint - shift), z1, axis=2)
    return -(np.log(trapezoid(inner, z2, axis=1)) + shift[:, 0, 0])


def test_hvae_iwae_is_between_the_elbo_and_the_exact_likelihood(x64):
    # a model small enough to integrate: 2-D data, 1-D latents, random (untrained) weights
    model = hvae.HVAE(hidden=8, latent1=1, latent2=1, out=2)
    x = np.array([[0.1, 0.9], [0.5, 0.5], [0.8, 0.3]])
    params = model.init(jax.random.key(1), x[:1], KEY)
    exact = _hvae_exact_nll(model, params, x)
    keys = jax.random.split(jax.random.key(2), 200)
    # 200 independent estimates per k, in one vmapped program each
    est = {k: np.asarray(jax.jit(jax.vmap(
        lambda kk, k=k: hvae.iwae_nll(model, params, x, k=k, key=kk)))(keys))
        for k in (1, 10, 100, 1000)}
    mean = {k: v.mean(0) for k, v in est.items()}
    se = {k: v.std(0) / np.sqrt(len(keys)) for k, v in est.items()}
    # E[-log mean of k weights] is an upper bound on -log p(x) that decreases in k towards it
    # (Burda et al. 2016, thm 1); k = 1 is the -ELBO. Measured SEs: 0.08 (k=1) to 0.004 (k=1000).
    for k in est:
        assert np.all(mean[k] > exact - 3 * se[k])
    assert np.all(mean[1] > mean[10]) and np.all(mean[10] > mean[100])
    assert np.all(mean[100] > mean[1000])
    # the bias shrinks with k (O(1/k)): 0.01 at k = 1000, a tenth of its k = 10 value or less
    gap = {k: mean[k] - exact for k in est}
    assert np.all(gap[1000] < 0.03) and np.all(gap[1000] < gap[10] / 3)


def test_tiny_vae_loss_falls():
    x = load_mnist("train", source="bundled").images[:640].reshape(-1, 784)
    model = vae.VAE(hidden=64, latent=8)
    params = model.init(KEY, x[:1], KEY)
    _, hist = train(vae.make_loss(model, "gaussian", book=True), params, optax.adam(1e-3), (x,),
                    key=KEY, epochs=4, batch_size=32)
    assert hist[-1]["loss"] < 0.8 * hist[0]["loss"]


def test_hvae_generate_samples_z1_as_the_book_or_decodes_its_mean():
    model = hvae.HVAE(hidden=16, latent1=3, latent2=2, out=5)
    params = model.init(KEY, jnp.zeros((1, 5)), KEY)
    z2 = jax.random.normal(jax.random.key(1), (4, 2))
    dec1 = lambda m, z: m.decoder1(z)  # noqa: E731
    dec2 = lambda m, z: m.decoder2(z)  # noqa: E731
    z1_hat = model.apply(params, z2, method=dec2)
    mean = model.apply(params, z2, method=hvae.HVAE.generate)
    np.testing.assert_allclose(mean, model.apply(params, z1_hat, method=dec1), rtol=1e-6)
    k = jax.random.key(2)
    sampled = model.apply(params, z2, k, method=hvae.HVAE.generate)
    want = model.apply(params, z1_hat + jax.random.normal(k, z1_hat.shape), method=dec1)
    np.testing.assert_allclose(sampled, want, rtol=1e-6)
    assert not np.allclose(sampled, mean)
