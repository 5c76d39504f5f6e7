"""Latent diffusion ("Stable Diffusion" in miniature, book chapter 10's text; beyond its code):
a convolutional autoencoder maps 28x28 digits to an 8x8xC latent, diffusion runs there, and
samples are decoded.

    encode: 28x28x1 -pad-> 32x32 -conv s2-> 16x16x32 -conv s2-> 8x8x64 -1x1-> 8x8xC
    decode: 8x8xC -conv-> 8x8x64 -convT s2-> 16x16x32 -convT s2-> 32x32x16 -conv-> crop 28x28x1
The decoder outputs Bernoulli logits (pixels in [0, 1]); the loss is the pixel cross-entropy.
Latents are divided by their standard deviation over the training set (`scale`), so the
diffusion model sees roughly unit-variance data, as Stable Diffusion's scale factor does.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax


class Autoencoder(nn.Module):
    latent_channels: int = 2

    def setup(self):
        self.enc = [nn.Conv(32, (3, 3), strides=2, padding=1),
                    nn.Conv(64, (3, 3), strides=2, padding=1),
                    nn.Conv(self.latent_channels, (1, 1))]
        self.dec = [nn.Conv(64, (3, 3), padding=1),
                    nn.ConvTranspose(32, (4, 4), strides=(2, 2), padding="SAME"),
                    nn.ConvTranspose(16, (4, 4), strides=(2, 2), padding="SAME"),
                    nn.Conv(1, (3, 3), padding=1)]

    def encode(self, x):
        """x (B, 28, 28, 1) in [0, 1] -> z (B, 8, 8, latent_channels)."""
        h = jnp.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
        h = nn.relu(self.enc[0](h))
        h = nn.relu(self.enc[1](h))
        return self.enc[2](h)

    def decode_logits(self, z):
        """z (B, 8, 8, C) -> Bernoulli logits (B, 28, 28, 1)."""
        h = z
        for layer in self.dec[:-1]:
            h = nn.relu(layer(h))
        return self.dec[-1](h)[:, 2:30, 2:30, :]

    def decode(self, z):
        """z -> images in [0, 1] (the Bernoulli means)."""
        return jax.nn.sigmoid(self.decode_logits(z))

    def __call__(self, x):
        return self.decode_logits(self.encode(x))


def make_loss(model: Autoencoder):
    """`loss(params, key, (x,), model_state) -> (mean per-image pixel cross-entropy, {'mse'},
    model_state)`."""
    def loss(params, key, batch, model_state=None):
        del key
        (x,) = batch
        logits = model.apply({"params": params}, x)
        bce = jnp.sum(optax.sigmoid_binary_cross_entropy(logits, x), axis=(1, 2, 3))
        mse = jnp.mean(jnp.square(jax.nn.sigmoid(logits) - x))
        return jnp.mean(bce), {"mse": mse}, model_state

    return loss
