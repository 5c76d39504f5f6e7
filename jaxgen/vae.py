"""Variational autoencoder (book chapter 7): a Flax linen module and pure per-example terms.

    log p(x) >= ELBO(x) = E_q(z|x)[log p(x|z)] - D_KL(q(z|x) || p(z)),  p(z) = N(0, I),
    q(z|x) = N(mu(x), diag(exp(logvar(x)))),  z = mu + exp(logvar / 2) * eps  (reparameterised)

Terms are per example and unreduced; the caller reduces over the batch.
Likelihoods: 'gaussian' (the book: a sigmoid mean with unit variance, so -log p(x|z) =
|x - x_hat|^2 / 2 + (D / 2) log 2 pi) and 'bernoulli' (logits; cross-entropy in nats).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen import kl as kl_lib
from jaxgen import normal

LIKELIHOODS = ("gaussian", "bernoulli")


class Encoder(nn.Module):
    hidden: int = 200
    latent: int = 20

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(self.hidden)(x))
        return nn.Dense(self.latent)(h), nn.Dense(self.latent)(h)  # mu, logvar


class Decoder(nn.Module):
    """z -> logits of x (apply a sigmoid for the book's mean in [0, 1])."""

    hidden: int = 200
    out: int = 784

    @nn.compact
    def __call__(self, z):
        return nn.Dense(self.out)(nn.relu(nn.Dense(self.hidden)(z)))


class VAE(nn.Module):
    """The book's VAE: 784-200-latent encoder, latent-200-784 decoder, ReLU (326,824 params)."""

    hidden: int = 200
    latent: int = 20
    out: int = 784

    def setup(self):
        self.encoder = Encoder(self.hidden, self.latent)
        self.decoder = Decoder(self.hidden, self.out)

    def __call__(self, x, key):
        """x (B, 784) -> (decoder logits (B, 784), mu (B, L), logvar (B, L))."""
        mu, logvar = self.encoder(x)
        z = reparameterize(mu, logvar, key=key)
        return self.decoder(z), mu, logvar

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)


def reparameterize(mu, logvar, *, key):
    """z = mu + sigma * eps, eps ~ N(0, I): a sample of q(z|x) differentiable in mu and logvar."""
    return mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape, mu.dtype)


def reconstruction(x, logits, likelihood: str = "gaussian"):
    """-log p(x|z) per example in nats, shape (B,) for x and logits (B, D).

    'gaussian': |x - sigmoid(logits)|^2 / 2 + (D/2) log(2 pi) (unit variance, the book's model).
    'bernoulli': sum_d BCE(x_d, sigmoid(logits_d)), for x in {0, 1}.
    """
    if likelihood == "gaussian":
        d = x.shape[-1]
        return 0.5 * jnp.sum(jnp.square(x - nn.sigmoid(logits)), -1) + 0.5 * d * math.log(
            2 * math.pi)
    if likelihood == "bernoulli":
        return jnp.sum(jnp.logaddexp(0.0, logits) - x * logits, axis=-1)
    raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")


def kl(mu, logvar):
    """D_KL(q(z|x) || N(0, I)) per example, shape (B,)."""
    return kl_lib.standard_normal_from_logvar(mu, logvar)


def book_loss(x, logits, mu, logvar):
    """The book's per-example loss: |x - x_hat|^2 + (-sum(1 + logvar - mu^2 - exp(logvar))),
    i.e. twice the Gaussian negative ELBO without its constant (the book drops the 1/2)."""
    return jnp.sum(jnp.square(x - nn.sigmoid(logits)), -1) + 2 * kl(mu, logvar)


def neg_elbo(model: VAE, params, x, likelihood: str = "gaussian", *, key):
    """-ELBO(x) per example in nats with one reparameterised sample, shape (B,)."""
    logits, mu, logvar = model.apply(params, x, key)
    return reconstruction(x, logits, likelihood) + kl(mu, logvar)


def iwae_nll(model: VAE, params, x, k: int = 100, likelihood: str = "gaussian", *, key):
    """Importance-weighted estimate of -log p(x) per example (Burda et al. 2016), shape (B,):

        -log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x)

    An upper bound on -log p(x) that tightens as k grows (k=1 is -ELBO).
    """
    mu, logvar = model.apply(params, x, method=VAE.encode)
    z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, (k, *mu.shape), mu.dtype)  # (k,B,L)
    logits = model.apply(params, z, method=VAE.decode)
    log_px_z = -reconstruction(jnp.broadcast_to(x, logits.shape), logits, likelihood)
    log_pz = normal.log_prob(z).sum(-1)
    log_qz = normal.log_prob(z, mu, jnp.exp(0.5 * logvar)).sum(-1)
    return -(jax.nn.logsumexp(log_px_z + log_pz - log_qz, axis=0) - math.log(k))


def make_loss(model: VAE, likelihood: str = "gaussian", book: bool = True):
    """The training loss in `jaxgen.train`'s form, `loss(params, key, (x,), model_state) ->
    (mean, metrics, model_state)`:
    the book's objective (`book_loss`: 2 x Gaussian -ELBO, constant dropped) or the -ELBO in nats,
    with one reparameterised sample per example; metrics: mean -ELBO and KL."""

    def loss(params, key, batch, model_state=None):
        (x,) = batch
        logits, mu, logvar = model.apply(params, x, key)
        neg_elbo = reconstruction(x, logits, likelihood) + kl(mu, logvar)
        objective = book_loss(x, logits, mu, logvar) if book else neg_elbo
        return jnp.mean(objective), {"neg_elbo": jnp.mean(neg_elbo),
                                     "kl": jnp.mean(kl(mu, logvar))}, model_state

    return loss
