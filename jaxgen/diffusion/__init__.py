"""Diffusion (book chapters 8-9): noise schedules, DDPM/DDIM as pure functions, the U-Net."""

from jaxgen.diffusion.ddpm import (
    ddim_sample,
    ddim_timesteps,
    loss,
    p_sample,
    posterior,
    q_sample,
    sample,
)
from jaxgen.diffusion.schedule import Schedule, cosine, from_betas, linear
from jaxgen.diffusion.unet import UNet, sinusoidal_embedding
from jaxgen.diffusion.vlb import bits_per_dim

__all__ = ["Schedule", "UNet", "bits_per_dim", "cosine", "ddim_sample", "ddim_timesteps",
           "from_betas", "linear", "loss", "p_sample", "posterior", "q_sample", "sample",
           "sinusoidal_embedding"]
