"""Noise schedules for DDPM (book chapter 9).

Timesteps are 1-indexed as in the book: t = 1..T. Arrays have length T + 1 and index 0 holds the
noise-free state (beta_0 = 0, alpha_bar_0 = 1), so `schedule.alpha_bars[t]` reads as the maths:

    alpha_t = 1 - beta_t,   alpha_bar_t = prod_{s=1..t} alpha_s
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp


class Schedule(NamedTuple):
    betas: jax.Array  # (T + 1,), betas[0] = 0
    alphas: jax.Array  # (T + 1,), alphas[0] = 1
    alpha_bars: jax.Array  # (T + 1,), alpha_bars[0] = 1

    @property
    def T(self) -> int:
        return self.betas.shape[0] - 1


def from_betas(betas: jax.Array) -> Schedule:
    """A schedule from beta_1..beta_T, shape (T,), each in (0, 1)."""
    betas = jnp.concatenate([jnp.zeros((1,), betas.dtype), betas])
    alphas = 1.0 - betas
    return Schedule(betas, alphas, jnp.cumprod(alphas))


def linear(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """The book's (and Ho et al.'s) schedule: beta_t linear from beta_start to beta_end."""
    if T < 1 or not 0 < beta_start <= beta_end < 1:
        raise ValueError(f"need T >= 1 and 0 < beta_start <= beta_end < 1, got T={T}, "
                         f"beta_start={beta_start}, beta_end={beta_end}")
    return from_betas(jnp.linspace(beta_start, beta_end, T, dtype=jnp.float32))


def cosine(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """Nichol & Dhariwal (2021): alpha_bar_t = f(t) / f(0),
    f(t) = cos^2(((t/T + s) / (1 + s)) pi / 2), betas clipped at max_beta."""
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    f = lambda t: jnp.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    t = jnp.arange(T + 1, dtype=jnp.float32)
    alpha_bars = f(t) / f(0.0)
    betas = jnp.clip(1 - alpha_bars[1:] / alpha_bars[:-1], 0.0, max_beta)
    return from_betas(betas)
