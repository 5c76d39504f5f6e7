"""A trained diffusion model as one saved artefact, and batched guided sampling from it.

`save(dir, model)` writes `model.json` (how to rebuild the networks) and `model.msgpack` (their
parameters), atomically; `load(dir)` reads them back; `generate` samples images in [0, 1] with
DDPM, DDIM or DPM-Solver++(2M), with classifier-free guidance for conditional models, and
decodes latents for latent-diffusion models. This is what `jaxgen sample` runs.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import flax.serialization
import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jaxgen.diffusion import ddpm, guidance, solvers
from jaxgen.diffusion import schedule as schedules
from jaxgen.diffusion.latent import Autoencoder
from jaxgen.diffusion.prediction import PREDICTIONS, eps_model
from jaxgen.diffusion.resunet import ResUNet
from jaxgen.diffusion.unet import UNet
from jaxgen.io import _atomic_write, write_json

SCHEDULES = {"linear": schedules.linear, "cosine": schedules.cosine}  # name -> f(T)
# DDIM (steps), ancestral (all T), DPM-Solver++(2M) of the ODE (steps) and of the SDE (steps)
SAMPLERS = ("ddim", "ddpm", "dpm++", "dpm++sde")
ARCHITECTURES = {"unet": UNet, "resunet": ResUNet}  # model.json "arch" -> module


@dataclasses.dataclass(frozen=True)
class DiffusionModel:
    """A U-Net (conditional or not) over `shape`, optionally in an autoencoder's latent space
    (then `shape` is the latent shape and samples are decoded), with everything sampling needs
    to undo the noising it was trained on: the noise schedule (by name) and T, and what the net
    predicts. `save`/`load` round-trip all of it, so a model samples the way it was trained."""

    unet: UNet | ResUNet
    variables: Any  # {'unet': U-Net variables, 'autoencoder': its params (latent models only)}
    shape: tuple[int, ...]  # one sample, e.g. (28, 28, 1) or (8, 8, 2)
    T: int = 1000
    p_uncond: float = 0.0  # label dropout used in training (0: guidance is meaningless)
    autoencoder: Autoencoder | None = None
    latent_scale: float = 1.0
    schedule: str = "linear"  # a key of SCHEDULES
    prediction: str = "eps"  # one of PREDICTIONS: what the net outputs (eps, v or x0)
    data_range: tuple[float, float] = (0.0, 1.0)  # pixels as trained (the book: [0, 1])

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {tuple(SCHEDULES)}, got {self.schedule!r}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if not isinstance(self.T, int) or self.T < 1:
            raise ValueError(f"T must be an integer >= 1, got {self.T!r}")
        if not 0.0 <= self.p_uncond <= 1.0:
            raise ValueError(f"p_uncond must be in [0, 1], got {self.p_uncond!r}")
        lo, hi = self.data_range
        if not lo < hi:
            raise ValueError(f"data_range must be (lo, hi) with lo < hi, got {self.data_range}")

    @property
    def num_classes(self) -> int | None:
        return self.unet.num_classes

    @property
    def noise_schedule(self) -> schedules.Schedule:
        """The betas / alphas / alpha_bars the model was trained with."""
        return SCHEDULES[self.schedule](self.T)


def _net_config(net: UNet | ResUNet) -> dict:
    """The module's constructor arguments as JSON, with "arch" naming the class."""
    arch = {cls: name for name, cls in ARCHITECTURES.items()}[type(net)]
    fields = {f.name: getattr(net, f.name) for f in dataclasses.fields(net)
              if f.name not in ("parent", "name")}
    return {"arch": arch, **{k: list(v) if isinstance(v, tuple) else v
                             for k, v in fields.items()}}


def _net_from_config(cfg: dict) -> UNet | ResUNet:
    cfg = dict(cfg)
    cls = ARCHITECTURES[cfg.pop("arch", "unet")]  # files before ResUNet hold book-style U-Nets
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})


def _config(model: DiffusionModel) -> dict:
    ae = model.autoencoder
    return {"unet": _net_config(model.unet),
            "shape": list(model.shape), "T": model.T, "p_uncond": model.p_uncond,
            "autoencoder": None if ae is None else {"latent_channels": ae.latent_channels},
            "latent_scale": model.latent_scale, "schedule": model.schedule,
            "prediction": model.prediction, "data_range": list(model.data_range)}


STORAGE_DTYPES = ("float32", "float16")  # how model.msgpack may hold the floating arrays


def save(directory: str | Path, model: DiffusionModel, *, dtype: str = "float32") -> Path:
    """Write `model.msgpack` then `model.json` into `directory` (each atomically).

    dtype 'float16' halves the file (the models shipped with jaxgen are stored so); `load`
    always returns float32 variables. Rounding to float16 moves a weight by at most 2^-11 of
    itself, so such a model is judged as shipped, not assumed equal to the float32 one."""
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(STORAGE_DTYPES)}, got {dtype!r}")
    directory = Path(directory)
    variables = jax.tree_util.tree_map(
        lambda a: np.asarray(a, dtype) if jnp.issubdtype(a.dtype, jnp.floating)
        else np.asarray(a), model.variables)
    data = flax.serialization.to_bytes(variables)
    _atomic_write(directory / "model.msgpack", lambda f: f.write(data))
    cfg = {**_config(model), "msgpack_sha256": hashlib.sha256(data).hexdigest()}
    write_json(directory / "model.json", {**cfg, "sha256": _config_digest(cfg)})
    return directory


def _config_digest(cfg: dict) -> str:
    """SHA-256 of model.json's fields (all but "sha256" itself), canonically serialised."""
    body = {k: v for k, v in cfg.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _check_variables(data: bytes, template, path: Path) -> None:
    """The arrays in `data` (msgpack) are exactly those the declared network has, by name and
    shape; raises ValueError naming the first that is missing, extra or misshapen."""
    want = flax.traverse_util.flatten_dict(flax.serialization.to_state_dict(template), sep="/")
    try:
        got = flax.traverse_util.flatten_dict(flax.serialization.msgpack_restore(data), sep="/")
    except Exception as e:
        raise ValueError(f"{path}: not a msgpack file of network variables "
                         f"({type(e).__name__})") from e
    for name in sorted(set(got) - set(want)):
        raise ValueError(f"{path}: holds {name}, which the network in model.json does not have "
                         f"(the two files are from different models)")
    for name, spec in want.items():
        a = got.get(name)
        if a is None or np.shape(a) != spec.shape:
            raise ValueError(f"{path}: {name} has shape "
                             f"{None if a is None else np.shape(a)}, but model.json's network "
                             f"needs {spec.shape} (the two files are from different models)")


def _templates(unet: UNet | ResUNet, shape, ae: Autoencoder | None) -> dict:
    """The variables' structure (shapes only: nothing is computed) for deserialising."""
    key = jax.random.key(0)
    x, t = jnp.zeros((1, *shape)), jnp.ones((1,), jnp.int32)
    out = {"unet": jax.eval_shape(unet.init, key, x, t)}  # params (and BatchNorm statistics)
    if ae is not None:
        out["autoencoder"] = jax.eval_shape(ae.init, key, jnp.zeros((1, 28, 28, 1)))["params"]
    return out


def load(directory: str | Path) -> DiffusionModel:
    """The model `save` wrote into `directory` (a `jaxgen run` output folder)."""
    directory = Path(directory)
    if not (directory / "model.json").is_file() or not (directory / "model.msgpack").is_file():
        raise ValueError(f"checkpoint must be a folder with model.json and model.msgpack (the "
                         f"output of `jaxgen run ddpm|conditional|cfg|...`), got {directory}")
    json_path, msgpack_path = directory / "model.json", directory / "model.msgpack"
    data = msgpack_path.read_bytes()
    try:
        cfg = json.loads(json_path.read_text())
        if "sha256" in cfg and _config_digest(cfg) != cfg["sha256"]:
            raise ValueError(f"{json_path}: its fields do not match their sha256 (edited or "
                             f"damaged; a model samples only as it was trained)")
        expected = cfg.get("msgpack_sha256")  # absent in files written before checksums
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise ValueError(f"{msgpack_path}: its SHA-256 does not match model.json's "
                             f"msgpack_sha256 (damaged, or from another run)")
        unet = _net_from_config(cfg["unet"])
        ae = None if cfg["autoencoder"] is None else Autoencoder(**cfg["autoencoder"])
        shape = tuple(cfg["shape"])
        template = _templates(unet, shape, ae)
        _check_variables(data, template, msgpack_path)
        variables = jax.tree_util.tree_map(  # float16-stored models compute in float32
            lambda a: jnp.asarray(a, jnp.float32) if jnp.issubdtype(a.dtype, jnp.floating)
            else jnp.asarray(a), flax.serialization.from_bytes(template, data))
        try:  # model.json files written before schedules were recorded: linear eps models
            return DiffusionModel(unet, variables, shape, cfg["T"], cfg["p_uncond"], ae,
                                  cfg["latent_scale"], cfg.get("schedule", "linear"),
                                  cfg.get("prediction", "eps"),
                                  tuple(cfg.get("data_range", (0.0, 1.0))))
        except ValueError as e:
            raise ValueError(f"{json_path}: {e}") from e
    except KeyError as e:
        raise ValueError(f"{json_path}: field {e} is missing") from e
    except (TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"{json_path}: not a model description written by jaxgen "
                         f"({str(e).splitlines()[0][:160]})") from e


def check_request(model: DiffusionModel, labels, gamma: float,
                  guidance_interval: tuple[float, float] | None = None) -> None:
    """Clear errors for labels/guidance a model cannot honour."""
    if not np.isfinite(gamma) or gamma < 0:
        raise ValueError(f"guidance must be a finite number >= 0, got {gamma}")
    if guidance_interval is not None:
        check_interval(guidance_interval)
        if model.num_classes is None or model.p_uncond == 0.0:
            raise ValueError("guidance_interval: limits classifier-free guidance, which needs "
                             "a conditional model trained with label dropout")
    if model.num_classes is None:
        if labels is not None:
            raise ValueError("label: this model is unconditional; leave the label out")
        if gamma != 1.0:
            raise ValueError("guidance: this model is unconditional; guidance needs a "
                             "conditional model")
        return
    if labels is None and model.p_uncond == 0.0:
        raise ValueError("labels: this model was trained without label dropout, so it has no "
                         "null label to sample unconditionally; pass labels")
    if gamma != 1.0 and model.p_uncond == 0.0:
        raise ValueError("guidance: this model was trained without label dropout (no null "
                         "label), so only guidance 1 (plain conditioning) is meaningful")
    labels = np.asarray([] if labels is None else labels)
    if labels.size and (labels.min() < 0 or labels.max() >= model.num_classes):
        raise ValueError(f"label must be in 0..{model.num_classes - 1}, got "
                         f"{labels.min() if labels.min() < 0 else labels.max()}")


def check_spacing(sampler: str, spacing: str | None) -> None:
    """ValueError naming spacing unless it is None or a grid of `ddpm.SPACINGS` for a sampler
    that takes one (ddpm's ancestral sampler takes every timestep)."""
    if spacing is None:
        return
    if spacing not in ddpm.SPACINGS:
        raise ValueError(f"spacing must be one of {', '.join(ddpm.SPACINGS)}, got {spacing!r}")
    if sampler == "ddpm":
        raise ValueError("spacing applies to ddim, dpm++ and dpm++sde; the ddpm sampler takes "
                         "all T timesteps")


def check_interval(interval) -> None:
    """ValueError naming guidance_interval unless it is (sigma_lo, sigma_hi), 0 <= lo < hi."""
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"guidance_interval must be two noise levels (sigma_lo, sigma_hi), got "
                         f"{interval!r}") from None
    if not (0.0 <= lo < hi) or np.isnan(hi):
        raise ValueError(f"guidance_interval must be (sigma_lo, sigma_hi) with 0 <= sigma_lo < "
                         f"sigma_hi (sigma_hi may be inf), got ({lo:g}, {hi:g})")


@functools.partial(jax.jit, static_argnames=("unet", "autoencoder", "shape", "T", "schedule",
                                             "prediction", "data_range", "sampler", "steps",
                                             "spacing", "guided", "limited", "guide_fn"))
def _sample_batch(variables, key, y, gamma, guide_scale, latent_scale, interval, *, unet,
                  autoencoder, shape, T, schedule, prediction, data_range, sampler, steps,
                  spacing, guided, limited, guide_fn):
    """One compiled batch of `generate`; gamma, guide_scale and the guidance interval (lo, hi)
    are traced, so a sweep over guidance scales or intervals reuses one compilation."""
    sched = SCHEDULES[schedule](T)
    if unet.num_classes is not None:
        apply = lambda x, t, yy: unet.apply(variables["unet"], x, t, yy)  # noqa: E731
        # guidance combines the raw outputs: eps, v and x0 are affine in one another with
        # label-free coefficients, so combining any of them combines the implied eps alike
        active = guidance.sigma_interval(sched.alpha_bars, *interval) if limited else None
        model_fn = (guidance.cfg_eps(apply, y, unet.num_classes, gamma, active) if guided
                    else lambda x, t: apply(x, t, y))
    else:
        model_fn = lambda x, t: unet.apply(variables["unet"], x, t)  # noqa: E731
    eps_fn = eps_model(prediction, model_fn, sched)
    guide = None if guide_fn is None else guidance.scaled_guide(guide_fn(y), guide_scale)
    clip = data_range if autoencoder is None else None
    if sampler == "ddpm":
        x = ddpm.sample(eps_fn, shape, sched, clip=clip, guide=guide, key=key)[0]
    elif sampler == "ddim":
        x = ddpm.ddim_sample(eps_fn, shape, sched, steps, clip=clip, guide=guide,
                             spacing=spacing or "uniform", key=key)
    else:
        x = solvers.dpm_solver_2m(eps_fn, shape, sched, steps, clip=clip, guide=guide,
                                  spacing=spacing or "logsnr",
                                  eta=1.0 if sampler == "dpm++sde" else 0.0, key=key)
    if autoencoder is not None:
        x = autoencoder.apply({"params": variables["autoencoder"]}, x * latent_scale,
                              method=Autoencoder.decode)
    else:
        x = (x - data_range[0]) / (data_range[1] - data_range[0])
    return jnp.clip(x, 0.0, 1.0)


def generate(model: DiffusionModel, n: int, labels=None, gamma: float = 1.0,
             sampler: str = "ddim", steps: int = 50, batch_size: int = 250,
             guide_fn=None, guide_scale: float = 0.0,
             guidance_interval: tuple[float, float] | None = None,
             spacing: str | None = None, *, key: jax.Array,
             progress: str | None = None) -> np.ndarray:
    """n images (n, 28, 28, 1) in [0, 1].

    labels: None (unconditional, or the null label) or (n,) ints; gamma: classifier-free
    guidance scale (1 = conditional); guidance_interval (sigma_lo, sigma_hi): guide only where
    sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) is in (sigma_lo, sigma_hi], sampling
    conditionally elsewhere (`guidance.sigma_interval`; None: every step); sampler 'ddim' (`steps` steps, eta 0), 'ddpm' (all T
    steps, ancestral), 'dpm++' (DPM-Solver++(2M), `steps` network evaluations) or 'dpm++sde'
    (its stochastic form, `steps` evaluations); spacing: their time grid, 'uniform',
    'logsnr' or 'karras' (`ddpm.timesteps`; None: 'uniform' for ddim, 'logsnr' for dpm++ and
    dpm++sde).
    Classifier guidance: `guide_fn(y)` returns grad_x log p(y | x_t, t) (e.g.
    `guidance.classifier_grad`), scaled by `guide_scale`; pass the same guide_fn object for
    every scale to reuse one compilation.
    Batches of `batch_size` share one compiled sampler (the last one is padded); `progress`,
    if given, labels a progress bar over them.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if sampler != "ddpm" and not (isinstance(steps, int) and 1 <= steps <= model.T):
        raise ValueError(f"steps must be an integer in 1..{model.T}, got {steps!r}")
    check_spacing(sampler, spacing)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    conditional = model.num_classes is not None
    # an unconditional model takes labels only as the targets of classifier guidance
    check_request(model, None if guide_fn is not None and not conditional else labels, gamma,
                  guidance_interval)
    limited = guidance_interval is not None
    if conditional and gamma == 0.0 and not limited:  # eps(x_t, t, null): one undoubled pass
        labels, gamma = None, 1.0
    if conditional and labels is None:
        labels = np.full((n,), model.num_classes)  # the null label: unconditional samples
    labels = None if labels is None else np.asarray(labels, np.int32)
    if labels is not None and labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    b = min(batch_size, n)
    static = dict(unet=model.unet, autoencoder=model.autoencoder, shape=(b, *model.shape),
                  T=model.T, schedule=model.schedule, prediction=model.prediction,
                  data_range=tuple(model.data_range), sampler=sampler, steps=steps,
                  spacing=spacing, guided=conditional and gamma != 1.0, limited=limited,
                  guide_fn=guide_fn)
    interval = jnp.asarray(guidance_interval if limited else (0.0, np.inf), jnp.float32)
    out = []
    starts = range(0, n, b)
    for i, start in enumerate(tqdm(starts, desc=progress, unit="batch", leave=False,
                                   disable=progress is None)):
        y = np.zeros((b,), np.int32) if labels is None else np.resize(labels[start:start + b], b)
        x = _sample_batch(model.variables, jax.random.fold_in(key, i), y, jnp.float32(gamma),
                          jnp.float32(guide_scale), jnp.float32(model.latent_scale), interval,
                          **static)
        out.append(np.asarray(x)[: n - start])
    return np.concatenate(out)
