"""What a diffusion network predicts, and how its training loss is weighted across timesteps.

With x_t = a x_0 + s eps, where a = sqrt(alpha_bar_t) and s = sqrt(1 - alpha_bar_t) (a^2 + s^2 = 1):

    eps (the book, Ho et al. 2020)      target eps
    x0                                   target x_0
    v   (Salimans & Ho 2022)             target v = a eps - s x_0

and each converts to the others given x_t:

    x_0 = (x_t - s eps) / a = a x_t - s v,       eps = (x_t - a x_0) / s = s x_t + a v.

Loss weighting (all as weights on the plain MSE of each target, per example):

    uniform          w = 1 (the book's simple loss for eps)
    min-snr          w = min(SNR_t, gamma) / SNR_t          for eps
    (Hang et al.)    w = min(SNR_t, gamma) / (SNR_t + 1)    for v
                     w = min(SNR_t, gamma)                  for x0

with SNR_t = a^2 / s^2: the same effective weight min(SNR_t, gamma) on the x_0 error in all
three parameterisations, which stops the easy low-noise steps dominating the gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxgen.diffusion.schedule import Schedule

PREDICTIONS = ("eps", "v", "x0")
WEIGHTINGS = ("uniform", "min-snr")

ModelFn = Callable[[jax.Array, jax.Array], jax.Array]  # (x_t (B, ...), t (B,)) -> prediction


def check(prediction: str, weighting: str = "uniform") -> None:
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")


def _coefficients(t: jax.Array, x: jax.Array, schedule: Schedule):
    """a = sqrt(alpha_bar_t), s = sqrt(1 - alpha_bar_t), shaped to broadcast against x."""
    ab = jnp.asarray(schedule.alpha_bars[t])
    ab = ab.reshape(ab.shape + (1,) * (x.ndim - ab.ndim))
    return jnp.sqrt(ab), jnp.sqrt(1.0 - ab)


def snr(t: jax.Array, schedule: Schedule) -> jax.Array:
    """Signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t) at integer timesteps t."""
    ab = schedule.alpha_bars[t]
    return ab / (1.0 - ab)


def target(prediction: str, x0: jax.Array, noise: jax.Array, t: jax.Array,
           schedule: Schedule) -> jax.Array:
    """What the network should output for x_t = q_sample(x0, t, noise): eps, x0 or v."""
    check(prediction)
    a, s = _coefficients(t, x0, schedule)
    return {"eps": noise, "x0": x0, "v": a * noise - s * x0}[prediction]


def to_eps(prediction: str, out: jax.Array, x_t: jax.Array, t: jax.Array,
           schedule: Schedule) -> jax.Array:
    """The noise estimate implied by a network output `out` of kind `prediction` at x_t."""
    check(prediction)
    if prediction == "eps":
        return out
    a, s = _coefficients(t, x_t, schedule)
    return (x_t - a * out) / s if prediction == "x0" else s * x_t + a * out


def eps_model(prediction: str, model_fn: ModelFn, schedule: Schedule) -> ModelFn:
    """`model_fn` (predicting eps, v or x0) as an eps-function `eps_fn(x_t, t)`, the one
    interface every sampler in `jaxgen.diffusion` takes."""
    check(prediction)
    if prediction == "eps":
        return model_fn
    return lambda x, t: to_eps(prediction, model_fn(x, t), x, t, schedule)


def loss_weight(weighting: str, prediction: str, t: jax.Array, schedule: Schedule,
                gamma: float = 5.0) -> jax.Array:
    """Per-example weights (B,) of the MSE on `prediction`'s target (see the module docstring)."""
    check(prediction, weighting)
    if weighting == "uniform":
        return jnp.ones(jnp.shape(t), jnp.float32)
    r = snr(t, schedule)
    clipped = jnp.minimum(r, gamma)
    return {"eps": clipped / r, "v": clipped / (r + 1.0), "x0": clipped}[prediction]


def loss(model_fn: ModelFn, x0: jax.Array, schedule: Schedule, prediction: str = "eps",
         weighting: str = "uniform", gamma: float = 5.0, *, key: jax.Array) -> jax.Array:
    """Per-example loss (B,): w(t) |target - model_fn(x_t, t)|^2 averaged over pixels,
    t ~ U{1..T}, eps ~ N(0, I) from `key`. With prediction='eps', weighting='uniform' it is
    `ddpm.loss`, the book's, draw for draw."""
    check(prediction, weighting)
    kt, kn = jax.random.split(key)
    t = jax.random.randint(kt, (x0.shape[0],), 1, schedule.T + 1)
    noise = jax.random.normal(kn, x0.shape, x0.dtype)
    a, s = _coefficients(t, x0, schedule)
    err = model_fn(a * x0 + s * noise, t) - target(prediction, x0, noise, t, schedule)
    mse = jnp.mean(jnp.square(err).reshape(x0.shape[0], -1), axis=1)
    return loss_weight(weighting, prediction, t, schedule, gamma) * mse
