"""Training any diffusion U-Net (GroupNorm or the book's BatchNorm, conditional or not) with
`jaxgen.train`, into a `DiffusionModel` that carries its schedule and samples as it was trained.

The EMA rule lives here: sampling uses the exponential moving average of the params once it has
forgotten its start (step >= 2 / (1 - decay), where the initial weights' share
decay^step <= e^-2 ~ 0.14), else the raw params.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen.diffusion.objective import make_loss
from jaxgen.diffusion.pipeline import SCHEDULES, DiffusionModel
from jaxgen.diffusion.resunet import ResUNet
from jaxgen.diffusion.unet import UNet
from jaxgen.train import TrainState, train


def ema_ready(step: int, decay: float) -> bool:
    """Whether the EMA of the params has forgotten its start: step >= 2 / (1 - decay)."""
    return step >= 2 / (1 - decay)


def sampling_variables(state: TrainState, decay: float | None, warmup: bool = False) -> dict:
    """The U-Net variables to sample with: the EMA params when `ema_ready` (always, for an EMA
    with warm-up), else the params, with the model state (BatchNorm statistics) if any."""
    use_ema = decay is not None and (warmup or ema_ready(int(state.step), decay))
    return {"params": state.ema_params if use_ema else state.params, **(state.model_state or {})}


LR_SCHEDULES = ("constant", "cosine")


def learning_rate(lr: float, warmup: int = 0, schedule: str = "constant",
                  total_steps: int | None = None) -> optax.Schedule | float:
    """Adam's rate: a linear warm-up from 0 over `warmup` steps, then `lr` ('constant') or a
    cosine decay from lr to 0 over the remaining `total_steps - warmup` steps ('cosine').

    A run no longer than its warm-up ends inside the warm-up, whatever the schedule."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {schedule!r}")
    if schedule == "constant":
        after = optax.constant_schedule(lr)
    else:
        if total_steps is None or total_steps < 1:
            raise ValueError(f"a cosine lr_schedule needs total_steps >= 1, got {total_steps}")
        after = optax.cosine_decay_schedule(lr, max(total_steps - warmup, 1))
    if warmup == 0:
        return after if schedule == "cosine" else lr
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), after], [warmup])


def train_diffusion(
    net: UNet | ResUNet,
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    key: jax.Array,
    epochs: int,
    batch_size: int,
    lr: float = 1e-3,
    lr_warmup: int = 0,
    lr_schedule: str = "constant",
    ema_decay: float | None = 0.999,
    schedule: str = "linear",
    T: int = 1000,
    p_uncond: float = 0.0,
    per_example_dropout: bool = True,
    prediction: str = "eps",
    weighting: str = "uniform",
    data_range: tuple[float, float] = (0.0, 1.0),
    ema_warmup: bool = False,
    workdir: str | Path | None = None,
    resume: bool = False,
    desc: str = "diffusion",
) -> tuple[DiffusionModel, list[dict], TrainState]:
    """Train `net` to predict the noise of x_t ~ q(x_t | x_0) (the book's eps-MSE) on images
    x (N, *shape) in [0, 1] and, for a conditional net, labels y (N,), with Adam(lr) and a
    parameter EMA.

    The recipe beyond the book: `prediction` 'v' or 'x0' (what the net outputs), `weighting`
    'min-snr' (`jaxgen.diffusion.prediction`), `data_range` (-1, 1) (pixels rescaled from
    [0, 1] before noising; samples are mapped back), `ema_warmup` (the EMA's decay rises with
    the step count, so even a short run samples from its average), `lr_warmup` (steps of
    linear learning-rate warm-up from 0), `lr_schedule` 'cosine' (after the warm-up the rate
    falls as lr (1 + cos(pi s / S)) / 2 to 0 at the run's last step; 'constant' keeps lr).

    A BatchNorm net (`net.norm == 'batch'`) trains with its statistics passed through
    `jaxgen.train` as model state; a label-conditioned net drops labels to the null label with
    probability `p_uncond` (classifier-free guidance training).

    Returns:
      (model, history, state): the `DiffusionModel` to sample from (see `sampling_variables`),
      one dict per epoch, and the final `TrainState`.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {tuple(SCHEDULES)}, got {schedule!r}")
    if (y is None) != (net.num_classes is None):
        raise ValueError("y must be given exactly when the net is conditional (num_classes "
                         f"{net.num_classes})")
    lo, hi = data_range
    if not lo < hi:
        raise ValueError(f"data_range must be (lo, hi) with lo < hi, got {data_range}")
    shape = tuple(np.shape(x)[1:])
    if (lo, hi) != (0.0, 1.0):
        x = (np.asarray(x, np.float32) * (hi - lo) + lo).astype(np.float32)
    k_init, k_train = jax.random.split(key)  # one key per use
    variables = jax.jit(net.init)(k_init, jnp.zeros((1, *shape)), jnp.ones((1,), jnp.int32))
    params = variables.pop("params")
    model_state = dict(variables) or None  # BatchNorm statistics, if any
    loss = make_loss(net, SCHEDULES[schedule](T), p_uncond=p_uncond,
                     per_example_dropout=per_example_dropout, prediction=prediction,
                     weighting=weighting)
    rate = learning_rate(lr, lr_warmup, lr_schedule,
                         total_steps=epochs * (len(x) // batch_size))
    state, hist = train(loss, params, optax.adam(rate), (x,) if y is None else (x, y), key=k_train,
                        epochs=epochs, batch_size=batch_size, workdir=workdir, resume=resume,
                        desc=desc, model_state=model_state, ema_decay=ema_decay,
                        ema_warmup=ema_warmup, log_every=10)
    model = DiffusionModel(net, {"unet": sampling_variables(state, ema_decay, ema_warmup)},
                           shape, T=T, p_uncond=p_uncond, schedule=schedule,
                           prediction=prediction, data_range=(float(lo), float(hi)))
    return model, hist, state
