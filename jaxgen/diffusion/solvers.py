"""A high-order solver of the probability-flow ODE: DPM-Solver++(2M) (Lu et al. 2022), as one
`lax.scan` over an `eps_fn(x_t, t)` (any eps/v/x0 network through `prediction.eps_model`).

With alpha_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t), lambda_t = log(alpha_t /
sigma_t) and the data prediction x0_hat_t = (x_t - sigma_t eps) / alpha_t, one step from t to the
next timestep s (h = lambda_s - lambda_t > 0) is

    x_s = (sigma_s / sigma_t) x_t + alpha_s (1 - e^{-h}) D,
    D   = (1 + 1 / (2 r)) x0_hat_t - 1 / (2 r) x0_hat_prev,   r = h_prev / h

(second order, reusing the previous step's x0_hat: one network evaluation a step). The first
step, and the last one (down to t = 0, where sigma = 0), are first order (D = x0_hat_t: DDIM).

With `eta` > 0 the step solves the reverse diffusion SDE instead (SDE-DPM-Solver++(2M), the
stochastic form of Lu et al. 2022's data-prediction solver), injecting fresh noise z ~ N(0, I)
each step:

    x_s = (sigma_s / sigma_t) e^{-eta h} x_t + alpha_s (1 - e^{-(1 + eta) h}) D
          + sigma_s sqrt(1 - e^{-2 eta h}) z;

at eta = 1 and first order this is exactly DDPM's ancestral step with the posterior variance
(DDIM with eta = 1) on the solver's grid. The noise corrects errors of an imperfect network
that the ODE carries to the end, at the price of needing more steps than the ODE.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxgen.diffusion.ddpm import EpsFn, GuideFn, timesteps
from jaxgen.diffusion.schedule import Schedule


def dpm_solver_2m(eps_fn: EpsFn, shape: tuple[int, ...], schedule: Schedule, steps: int = 20,
                  clip: tuple[float, float] | None = None, guide: GuideFn | None = None,
                  spacing: str = "logsnr", eta: float = 0.0, *, key: jax.Array) -> jax.Array:
    """x_T ~ N(0, I) (from `fold_in(key, 0)`, as every sampler here) -> x_0 in `steps` network
    evaluations at `ddpm.timesteps(schedule, steps, spacing)` (even in log-SNR by default),
    then down to t = 0.

    clip=(lo, hi) clips x0_hat to the data range. guide(x_t, t) -> g turns eps into
    eps - sigma_t g (classifier guidance, as in `ddpm.ddim_sample`). eta: 0 the ODE, 1 the SDE
    (noise of step i from `fold_in(key, i + 1)`).
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    ts = timesteps(schedule, steps, spacing)
    prev = jnp.concatenate([ts[1:], jnp.zeros((1,), ts.dtype)])
    alpha = jnp.sqrt(schedule.alpha_bars)
    sigma = jnp.sqrt(1.0 - schedule.alpha_bars)
    x_T = jax.random.normal(jax.random.fold_in(key, 0), shape)

    def step(carry, i):
        x, x0_prev, h_prev = carry
        t, s = ts[i], prev[i]
        t_batch = jnp.full((shape[0],), t)
        eps = eps_fn(x, t_batch)
        if guide is not None:
            eps = eps - sigma[t] * guide(x, t_batch)
        x0 = (x - sigma[t] * eps) / alpha[t]
        if clip is not None:
            x0 = jnp.clip(x0, *clip)
        final = s == 0
        # e^{-h} = alpha_t sigma_s / (sigma_t alpha_s): 0 at s = 0, where h is infinite
        decay = alpha[t] * sigma[s] / (sigma[t] * alpha[s])
        h = jnp.where(final, 1.0, -jnp.log(jnp.where(final, 1.0, decay)))
        second = (i > 0) & ~final
        half_inv_r = jnp.where(second, h / (2.0 * jnp.where(second, h_prev, 1.0)), 0.0)
        d = (1.0 + half_inv_r) * x0 - half_inv_r * x0_prev
        x = (sigma[s] / sigma[t]) * decay**eta * x + alpha[s] * (1.0 - decay ** (1 + eta)) * d
        if eta > 0:  # sigma_s = 0 at the last step: no noise added there
            z = jax.random.normal(jax.random.fold_in(key, i + 1), shape)
            x = x + sigma[s] * jnp.sqrt(1.0 - decay ** (2 * eta)) * z
        return (x, x0, h), None

    init = (x_T, jnp.zeros(shape), jnp.asarray(1.0))
    (x0, _, _), _ = jax.lax.scan(step, init, jnp.arange(ts.shape[0]))
    return x0
