"""Diffusion (book chapters 8-10): noise schedules, DDPM/DDIM as pure functions, the U-Net, a
saved model that carries its schedule (`pipeline`), and its training (`training`)."""

from jaxgen.diffusion.ddpm import (
    ddim_sample,
    ddim_timesteps,
    loss,
    p_sample,
    posterior,
    q_sample,
    sample,
)
from jaxgen.diffusion.pipeline import DiffusionModel, generate
from jaxgen.diffusion.schedule import Schedule, cosine, from_betas, linear
from jaxgen.diffusion.training import train_diffusion
from jaxgen.diffusion.unet import UNet, sinusoidal_embedding
from jaxgen.diffusion.vlb import bits_per_dim

__all__ = ["DiffusionModel", "Schedule", "UNet", "bits_per_dim", "cosine", "ddim_sample",
           "ddim_timesteps", "from_betas", "generate", "linear", "loss", "p_sample", "posterior",
           "q_sample", "sample", "sinusoidal_embedding", "train_diffusion"]
