"""Hierarchical VAE with a two-level Markov chain of latents (book chapter 8).

    p(x, z1, z2) = p(x | z1) p(z1 | z2) p(z2),   q(z1, z2 | x) = q(z1 | x) q(z2 | z1)
    p(z2) = N(0, I),  p(z1 | z2) = N(z1_hat(z2), I),  p(x | z1) as in `jaxgen.vae`
    -ELBO = -log p(x|z1) + D_KL(q(z1|x) || p(z1|z2)) + D_KL(q(z2|z1) || p(z2))

with z1 ~ q(z1|x), z2 ~ q(z2|z1) reparameterised (one sample each, as the book).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen import kl as kl_lib
from jaxgen import normal
from jaxgen.vae import Decoder, Encoder, reconstruction, reparameterize


class HVAE(nn.Module):
    """The book's HVAE: hidden 100, latents 20 and 20 (174,084 params)."""

    hidden: int = 100
    latent1: int = 20
    latent2: int = 20
    out: int = 784

    def setup(self):
        self.encoder1 = Encoder(self.hidden, self.latent1)  # q(z1 | x)
        self.encoder2 = Encoder(self.hidden, self.latent2)  # q(z2 | z1)
        self.decoder1 = Decoder(self.hidden, self.out)  # p(x | z1), logits
        self.decoder2 = Decoder(self.hidden, self.latent1)  # mean of p(z1 | z2)

    def __call__(self, x, key):
        """-> dict of logits, mu1, logvar1, z1, mu2, logvar2, z2, z1_hat (each (B, ...))."""
        k1, k2 = jax.random.split(key)
        mu1, logvar1 = self.encoder1(x)
        z1 = reparameterize(mu1, logvar1, key=k1)
        mu2, logvar2 = self.encoder2(z1)
        z2 = reparameterize(mu2, logvar2, key=k2)
        return dict(logits=self.decoder1(z1), mu1=mu1, logvar1=logvar1, z1=z1, mu2=mu2,
                    logvar2=logvar2, z2=z2, z1_hat=self.decoder2(z2))

    def generate(self, z2, key=None):
        """Ancestral sampling given z2 (B, latent2) -> x logits (B, out).

        With `key`, z1 ~ p(z1|z2) = N(z1_hat(z2), I) is sampled, as the book's code does; with
        key=None the mean z1_hat(z2) is decoded instead (smoother images, not a sample of p)."""
        z1_hat = self.decoder2(z2)
        if key is None:
            return self.decoder1(z1_hat)
        return self.decoder1(z1_hat + jax.random.normal(key, z1_hat.shape, z1_hat.dtype))


def terms(out: dict, x, likelihood: str = "gaussian") -> dict:
    """Per-example reconstruction and KL terms (nats), each shape (B,)."""
    return {
        "reconstruction": reconstruction(x, out["logits"], likelihood),
        "kl1": kl_lib.diag_normal(out["mu1"], jnp.exp(0.5 * out["logvar1"]), out["z1_hat"], 1.0),
        "kl2": kl_lib.standard_normal_from_logvar(out["mu2"], out["logvar2"]),
    }


def book_loss(out: dict, x):
    """The book's per-example loss: |x - x_hat|^2 + 2 KL1 + 2 KL2 (the 1/2 dropped)."""
    t = terms(out, x)
    return jnp.sum(jnp.square(x - nn.sigmoid(out["logits"])), -1) + 2 * (t["kl1"] + t["kl2"])


def iwae_nll(model: HVAE, params, x, k: int = 100, likelihood: str = "gaussian", *, key):
    """Importance-weighted estimate of -log p(x) with k joint samples of (z1, z2), shape (B,)."""
    keys = jax.random.split(key, k)
    out = jax.vmap(lambda kk: model.apply(params, x, kk))(keys)  # each (k, B, ...)
    sd = lambda logvar: jnp.exp(0.5 * logvar)  # noqa: E731
    log_w = (-reconstruction(jnp.broadcast_to(x, out["logits"].shape), out["logits"], likelihood)
             + normal.log_prob(out["z1"], out["z1_hat"]).sum(-1)
             + normal.log_prob(out["z2"]).sum(-1)
             - normal.log_prob(out["z1"], out["mu1"], sd(out["logvar1"])).sum(-1)
             - normal.log_prob(out["z2"], out["mu2"], sd(out["logvar2"])).sum(-1))
    return -(jax.nn.logsumexp(log_w, axis=0) - math.log(k))


def make_loss(model: HVAE):
    """The book's training loss in `jaxgen.train`'s form, `loss(params, key, (x,), model_state)
    -> (mean book_loss, metrics, model_state)`; metrics: mean -ELBO (nats), KL1 and KL2."""

    def fn(params, key, batch, model_state=None):
        (x,) = batch
        out = model.apply(params, x, key)
        t = terms(out, x)
        return jnp.mean(book_loss(out, x)), {
            "neg_elbo": jnp.mean(t["reconstruction"] + t["kl1"] + t["kl2"]),
            "kl1": jnp.mean(t["kl1"]), "kl2": jnp.mean(t["kl2"])}, model_state
    return fn
