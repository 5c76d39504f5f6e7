"""DDPM (book chapter 9): forward noising, the epsilon-prediction loss, the reverse step and
compiled samplers (ancestral DDPM and DDIM), as pure functions of an `eps_fn(x_t, t)`.

    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)
    q(x_{t-1} | x_t, x_0) = N(mu~_t, beta~_t I),
        mu~_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
                + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
        beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t
    p(x_{t-1} | x_t) = N(mu_theta, beta~_t I),
        mu_theta = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps(x_t, t)) / sqrt(alpha_t)

`eps_fn(x_t, t)` maps a batch x_t (B, ...) and integer timesteps t (B,) in 1..T to predicted
noise (B, ...). Each reverse step t draws its noise from `fold_in(key, t)`, so samplers that
visit the same timesteps draw the same noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxgen.diffusion.schedule import Schedule

EpsFn = Callable[[jax.Array, jax.Array], jax.Array]
GuideFn = Callable[[jax.Array, jax.Array], jax.Array]  # (x_t, t) -> mean shift direction


def _expand(a: jax.Array, x: jax.Array) -> jax.Array:
    """Per-example scalars (B,) (or one scalar) shaped to broadcast against x (B, ...)."""
    a = jnp.asarray(a)
    return a.reshape(a.shape + (1,) * (x.ndim - a.ndim))


def q_sample(x0: jax.Array, t: jax.Array, noise: jax.Array, schedule: Schedule) -> jax.Array:
    """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, for t (B,) in 0..T."""
    ab = _expand(schedule.alpha_bars[t], x0)
    return jnp.sqrt(ab) * x0 + jnp.sqrt(1.0 - ab) * noise


def loss(eps_fn: EpsFn, x0: jax.Array, schedule: Schedule, *, key: jax.Array) -> jax.Array:
    """Per-example epsilon-prediction loss |eps - eps_fn(x_t, t)|^2 averaged over pixels, (B,).

    t ~ U{1..T}, eps ~ N(0, I) drawn from `key` (the simple loss of Ho et al.; the book's).
    """
    kt, kn = jax.random.split(key)
    t = jax.random.randint(kt, (x0.shape[0],), 1, schedule.T + 1)
    noise = jax.random.normal(kn, x0.shape, x0.dtype)
    err = eps_fn(q_sample(x0, t, noise, schedule), t) - noise
    return jnp.mean(jnp.square(err).reshape(x0.shape[0], -1), axis=1)


def posterior(x0: jax.Array, x_t: jax.Array, t: jax.Array, schedule: Schedule):
    """Mean and variance of q(x_{t-1} | x_t, x_0) for t >= 1 (see the module docstring)."""
    ab, ab_prev = schedule.alpha_bars[t], schedule.alpha_bars[t - 1]
    beta, alpha = schedule.betas[t], schedule.alphas[t]
    c0 = _expand(jnp.sqrt(ab_prev) * beta / (1 - ab), x0)
    ct = _expand(jnp.sqrt(alpha) * (1 - ab_prev) / (1 - ab), x0)
    return c0 * x0 + ct * x_t, _expand((1 - ab_prev) / (1 - ab) * beta, x0)


def predict_x0(x_t: jax.Array, eps: jax.Array, t, schedule: Schedule) -> jax.Array:
    """x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
    ab = schedule.alpha_bars[t]
    return (x_t - jnp.sqrt(1 - ab) * eps) / jnp.sqrt(ab)


def p_sample(eps_fn: EpsFn, x_t: jax.Array, t, schedule: Schedule,
             clip: tuple[float, float] | None = None, guide: GuideFn | None = None, *,
             key: jax.Array) -> jax.Array:
    """One reverse step x_t -> x_{t-1} with the posterior variance (no noise at t = 1).

    clip=None is the book's step. clip=(lo, hi) clips the implied x0_hat to the data range and
    takes the posterior mean given it (Ho et al.'s clip_denoised; beyond the book): the same
    step when x0_hat is in range, and a guard against an imperfect eps compounding over 1000
    divisions by sqrt(alpha_t).
    guide: `guide(x_t, t) -> g` shifts the mean by Sigma_t g (classifier guidance, with
    g = s grad log p(y | x_t); see `jaxgen.diffusion.guidance`).
    """
    t_batch = jnp.full((x_t.shape[0],), t)
    eps = eps_fn(x_t, t_batch)
    alpha, ab, beta = schedule.alphas[t], schedule.alpha_bars[t], schedule.betas[t]
    if clip is None:
        mean = (x_t - beta / jnp.sqrt(1 - ab) * eps) / jnp.sqrt(alpha)
    else:
        x0 = jnp.clip(predict_x0(x_t, eps, t, schedule), *clip)
        mean, _ = posterior(x0, x_t, t_batch, schedule)
    var = (1 - schedule.alpha_bars[t - 1]) / (1 - ab) * beta
    if guide is not None:
        mean = mean + var * guide(x_t, t_batch)
    z = jax.random.normal(jax.random.fold_in(key, t), x_t.shape, x_t.dtype)
    return mean + jnp.where(t > 1, jnp.sqrt(var), 0.0) * z


def sample(eps_fn: EpsFn, shape: tuple[int, ...], schedule: Schedule,
           keep: int = 0, clip: tuple[float, float] | None = None,
           guide: GuideFn | None = None, *, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Ancestral sampling x_T ~ N(0, I) -> x_0 as ONE `lax.scan` over t = T..1.

    Args:
      keep: also return `keep` evenly spaced intermediate x_t (for trajectory figures).
      clip, guide: see `p_sample`.
    Returns:
      (x_0 of `shape`, trajectory (keep, *shape)); the trajectory is empty when keep == 0.
    """
    x_T = jax.random.normal(jax.random.fold_in(key, 0), shape)
    ts = jnp.arange(schedule.T, 0, -1)

    def step(x, t):
        x = p_sample(eps_fn, x, t, schedule, clip, guide, key=key)
        return x, x

    if keep == 0:
        x0, _ = jax.lax.scan(lambda x, t: (step(x, t)[0], None), x_T, ts)
        return x0, jnp.zeros((0, *shape))
    x0, path = jax.lax.scan(step, x_T, ts)
    idx = jnp.linspace(0, schedule.T - 1, keep).round().astype(int)
    return x0, path[idx]


def ddim_timesteps(T: int, steps: int) -> jax.Array:
    """`steps` timesteps from T down to 1, evenly spaced (T and 1 included when steps > 1)."""
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, {T}], got {steps}")
    return jnp.unique(jnp.linspace(1, T, steps).round().astype(int), size=steps)[::-1]


SPACINGS = ("uniform", "logsnr", "karras")


def timesteps(schedule: Schedule, steps: int, spacing: str = "uniform",
              sigma_max: float = 80.0, rho: float = 7.0) -> jax.Array:
    """`steps` distinct integer timesteps from high to low noise, ending at t = 1.

    'uniform': evenly spaced in t from T (`ddim_timesteps`, the DDIM paper's choice).
    'logsnr': evenly spaced in lambda_t = log(sqrt(alpha_bar_t / (1 - alpha_bar_t))) from
    max(lambda_T, -log sigma_max) to lambda_1 (Lu et al. 2022's choice for DPM-Solver;
    `sigma_max` keeps a cosine schedule's lambda_T ~ -17 from spending steps on pure noise).
    'karras': the EDM grid of Karras et al. 2022 over the same range of sigma_t = e^{-lambda_t}
    = sqrt((1 - alpha_bar_t) / alpha_bar_t), evenly spaced in sigma^{1/rho}:
    sigma_i = (sigma_hi^{1/rho} + i / (steps - 1) (sigma_lo^{1/rho} - sigma_hi^{1/rho}))^rho.
    Both noise-level grids round each level to the nearest timestep in lambda. Works under jit
    (the schedule may be traced).
    """
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    T = schedule.T
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, {T}], got {steps}")
    if spacing == "uniform" or steps == 1:
        return ddim_timesteps(T, steps)
    ab = schedule.alpha_bars[1:]
    lam = 0.5 * jnp.log(ab / (1.0 - ab))  # lam[t - 1], decreasing in t
    lam_lo = jnp.maximum(lam[-1], -math.log(sigma_max))
    if spacing == "logsnr":
        targets = jnp.linspace(lam_lo, lam[0], steps)
    else:
        hi, lo = jnp.exp(-lam_lo / rho), jnp.exp(-lam[0] / rho)  # sigma^{1/rho} at both ends
        targets = -rho * jnp.log(hi + jnp.linspace(0.0, 1.0, steps) * (lo - hi))
    hi = jnp.clip(jnp.searchsorted(-lam, -targets), 0, T - 1)
    lo = jnp.clip(hi - 1, 0, T - 1)
    ts = jnp.where(jnp.abs(lam[lo] - targets) < jnp.abs(lam[hi] - targets), lo, hi) + 1
    # make them distinct: w = ts - j is non-increasing iff ts is strictly decreasing
    j = jnp.arange(steps)[::-1]
    w = jax.lax.cummax(jnp.maximum(ts - j, 1)[::-1])[::-1]
    return jnp.minimum(w + j, T)


def ddim_sample(eps_fn: EpsFn, shape: tuple[int, ...], schedule: Schedule,
                steps: int = 50, eta: float = 0.0, clip: tuple[float, float] | None = None,
                guide: GuideFn | None = None, spacing: str = "uniform", *,
                key: jax.Array) -> jax.Array:
    """DDIM (Song et al. 2021) over `steps` timesteps (`timesteps(..., spacing)`) as one
    `lax.scan`.

        x0_hat = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t)
        sigma = eta sqrt((1 - ab_s) / (1 - ab_t)) sqrt(1 - ab_t / ab_s)
        x_s = sqrt(ab_s) x0_hat + sqrt(1 - ab_s - sigma^2) eps + sigma z

    eta = 0 is deterministic; eta = 1 with every timestep is DDPM with the posterior variance.
    clip=(lo, hi) clips x0_hat and recomputes eps from it (see `p_sample`).
    guide: eps <- eps - sqrt(1 - ab_t) guide(x_t, t) (classifier guidance for DDIM).
    """
    ts = timesteps(schedule, steps, spacing)
    prev = jnp.concatenate([ts[1:], jnp.zeros((1,), ts.dtype)])
    x_T = jax.random.normal(jax.random.fold_in(key, 0), shape)

    def step(x, ts_pair):
        t, s = ts_pair
        eps = eps_fn(x, jnp.full((shape[0],), t))
        ab_t, ab_s = schedule.alpha_bars[t], schedule.alpha_bars[s]
        if guide is not None:
            eps = eps - jnp.sqrt(1 - ab_t) * guide(x, jnp.full((shape[0],), t))
        x0_hat = (x - jnp.sqrt(1 - ab_t) * eps) / jnp.sqrt(ab_t)
        if clip is not None:
            x0_hat = jnp.clip(x0_hat, *clip)
            eps = (x - jnp.sqrt(ab_t) * x0_hat) / jnp.sqrt(1 - ab_t)
        sigma = eta * jnp.sqrt((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s))
        z = jax.random.normal(jax.random.fold_in(key, t), shape)
        x = jnp.sqrt(ab_s) * x0_hat + jnp.sqrt(jnp.clip(1 - ab_s - sigma**2, 0.0)) * eps
        return x + sigma * z, None

    x0, _ = jax.lax.scan(step, x_T, (ts, prev))
    return x0
