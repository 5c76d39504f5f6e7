"""Diffusion (book chapters 8-10): noise schedules, DDPM/DDIM as pure functions, eps/v/x0
parameterisations (`prediction`), DPM-Solver++ (`solvers`), the book's U-Net and a ResNet U-Net,
a saved model that carries its schedule (`pipeline`), and its training (`training`)."""

from jaxgen.diffusion.ddpm import (
    ddim_sample,
    ddim_timesteps,
    loss,
    p_sample,
    posterior,
    q_sample,
    sample,
    timesteps,
)
from jaxgen.diffusion.pipeline import DiffusionModel, generate
from jaxgen.diffusion.resunet import ResUNet
from jaxgen.diffusion.schedule import Schedule, cosine, from_betas, linear
from jaxgen.diffusion.solvers import dpm_solver_2m
from jaxgen.diffusion.training import train_diffusion
from jaxgen.diffusion.unet import UNet, sinusoidal_embedding
from jaxgen.diffusion.vlb import bits_per_dim

__all__ = ["DiffusionModel", "ResUNet", "Schedule", "UNet", "bits_per_dim", "cosine",
           "ddim_sample", "ddim_timesteps", "dpm_solver_2m", "from_betas", "generate", "linear",
           "loss", "p_sample", "posterior", "q_sample", "sample", "sinusoidal_embedding",
           "timesteps", "train_diffusion"]
