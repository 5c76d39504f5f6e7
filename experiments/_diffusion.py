"""What the diffusion experiments share: training an epsilon U-Net with `jaxgen.train`, judging
samples with the evaluator, guidance sweeps and their figures (the maths lives in jaxgen)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import jax
import numpy as np

from jaxgen import diffusion, evaluate
from jaxgen.config import ConfigError, as_dict
from jaxgen.data import load_mnist
from jaxgen.diffusion import pipeline, prediction, pretrained
from jaxgen.diffusion.training import LR_SCHEDULES, train_diffusion
from jaxgen.experiments._common import check_train_split, image_grid
from jaxgen.io import figure, save_figure


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    """What every diffusion experiment sets; each experiment's `Config` adds its own fields."""

    seed: int = 0
    widths: tuple[int, ...] = (32, 64, 128)  # U-Net channels per resolution
    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-3  # Adam
    ema_decay: float | None = 0.999  # None: no parameter EMA (the book)
    n_samples: int = 1000  # generated images judged
    steps: int = 50  # DDIM steps when sampling
    train_size: int | None = None  # training digits, evenly spread (None: all)
    train_split: str = "train"  # MNIST split trained on: 'train' (60,000) or 'train-5k'
    schedule: str = "linear"  # noise schedule: linear (the book) or cosine
    T: int = 1000  # training timesteps
    # the recipe beyond the book (each default is the book's choice)
    arch: str = "unet"  # 'unet' (the book's, `widths`) or 'resunet' (base/mults/depth/attention)
    norm: str = "group"  # unet: 'batch' (the book) or 'group'
    null_label: str = "learned"  # conditional unet: 'skip' (the book) or 'learned'
    param_init: str = "flax"  # unet: 'torch' (PyTorch's defaults, the book's model) or 'flax'
    dropout_per_example: bool = True  # label dropout per example, or whole batches (the book)
    base: int = 32  # resunet: channels at 28x28
    mults: tuple[int, ...] = (1, 2, 2)  # resunet: channel multipliers at 28, 14, 7
    depth: int = 1  # resunet: residual blocks per resolution
    attention: tuple[int, ...] = (7,)  # resunet: resolutions with self-attention
    prediction: str = "eps"  # what the net predicts: eps (the book), v or x0
    weighting: str = "uniform"  # loss weighting over t: uniform (the book) or min-snr
    data_range: tuple[float, float] = (0.0, 1.0)  # pixels while diffusing: [0, 1] or (-1, 1)
    ema_warmup: bool = False  # EMA decay min(ema_decay, (1 + n) / (10 + n)) after n steps
    sampler: str = "ddim"  # sampler judged: ddim, ddpm (all T steps) or dpm++
    # the sampler's time grid: uniform, logsnr or karras (None: uniform for ddim, logsnr for
    # dpm++ and dpm++sde; see `ddpm.timesteps`)
    spacing: str | None = None
    lr_warmup: int = 0  # steps of linear learning-rate warm-up
    lr_schedule: str = "constant"  # after the warm-up: constant (the book) or cosine decay to 0
    upsample: str = "conv"  # resunet: going up by resize + 3x3 conv ('conv') or resize alone
    scale_shift: bool = False  # resunet: time (and label) scale and shift each block's norm
    # load the model jaxgen ships (made by this experiment's quick preset) instead of training;
    # allowed only when every training setting equals the one it was trained with
    pretrained: bool = False

    shipped_model: ClassVar[str | None] = None  # the shipped model `pretrained` loads

    def __post_init__(self):
        if self.schedule not in pipeline.SCHEDULES:
            raise ConfigError(f"--set schedule: expected one of {', '.join(pipeline.SCHEDULES)}, "
                              f"got {self.schedule!r}")
        check_train_split(self.train_split)
        if self.T < 1:
            raise ConfigError(f"--set T: expected an int >= 1, got {self.T}")
        choices = {"arch": pipeline.ARCHITECTURES, "prediction": prediction.PREDICTIONS,
                   "norm": ("batch", "group"), "null_label": ("learned", "skip"),
                   "param_init": diffusion.unet.INITS, "lr_schedule": LR_SCHEDULES,
                   "upsample": diffusion.resunet.UPSAMPLES,
                   "weighting": prediction.WEIGHTINGS, "sampler": pipeline.SAMPLERS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"--set {name}: expected one of {', '.join(allowed)}, got "
                                  f"{getattr(self, name)!r}")
        if len(self.data_range) != 2 or not self.data_range[0] < self.data_range[1]:
            raise ConfigError(f"--set data_range: expected lo,hi with lo < hi, got "
                              f"{self.data_range}")
        if self.spacing is not None and self.spacing not in diffusion.ddpm.SPACINGS:
            raise ConfigError(f"--set spacing: expected none or one of "
                              f"{', '.join(diffusion.ddpm.SPACINGS)}, got {self.spacing!r}")
        if self.spacing is not None and self.sampler == "ddpm":
            raise ConfigError("--set spacing: the ddpm sampler takes all T timesteps; a grid "
                              "applies to ddim, dpm++ and dpm++sde")
        if self.sampler != "ddpm" and not 1 <= self.steps <= self.T:
            raise ConfigError(f"--set steps: expected an int in 1..{self.T}, got {self.steps}")
        if self.pretrained:
            check_pretrained(self)


def training_settings(config: dict) -> dict:
    """The fields of a diffusion config (as JSON) that decide the trained model: data, seed,
    optimisation, noising, parameterisation and the network the config's `arch` uses."""
    net = (("base", "mults", "depth", "attention", "upsample", "scale_shift")
           if config.get("arch") == "resunet"
           else ("widths", "norm", "null_label", "param_init"))
    keys = ("seed", "train_split", "train_size", "epochs", "batch_size", "lr", "lr_warmup",
            "lr_schedule",
            "ema_decay", "ema_warmup", "schedule", "T", "prediction", "weighting", "data_range",
            "arch", *net, "p_uncond", "dropout_per_example", "latent_channels", "ae_epochs",
            "ae_batch_size")
    return {k: config[k] for k in keys if k in config}


def check_pretrained(cfg: DiffusionConfig) -> None:
    """ConfigError unless jaxgen ships `cfg.shipped_model` and it was trained with every
    training setting of `cfg` (`training_settings`, where both configs have the field)."""
    name = cfg.shipped_model
    if name is None or name not in pretrained.available():
        raise ConfigError(f"--set pretrained: jaxgen ships no model for this experiment (it "
                          f"ships: {', '.join(pretrained.available()) or 'none'})")
    # a field the shipped config predates had its default then
    defaults = json_like({f.name: f.default for f in dataclasses.fields(DiffusionConfig)})
    theirs = training_settings({**defaults, **pretrained.about(name)["config"]})
    mine = training_settings(json_like(as_dict(cfg)))
    differ = [k for k in theirs if k in mine and theirs[k] != mine[k]]
    if differ:
        raise ConfigError("--set pretrained: the shipped " + repr(name) + " model was trained "
                          "with " + ", ".join(f"{k}={theirs[k]}" for k in differ) + ", this "
                          "config has " + ", ".join(f"{k}={mine[k]}" for k in differ)
                          + "; leave pretrained out to train one")


def json_like(d: dict) -> dict:
    """`d` as it reads back from JSON (tuples as lists), for comparing with saved configs."""
    return json.loads(json.dumps(d))


def load_pretrained(cfg: DiffusionConfig) -> tuple[pipeline.DiffusionModel, list, float]:
    """The shipped model `cfg.pretrained` names (`check_pretrained` has passed), with its
    training history and seconds per step, as `train_unet` returns a trained one."""
    model, info = pretrained.load(cfg.shipped_model)
    hist = info["history"]
    return model, hist, seconds_per_step(hist) if hist else info["seconds_per_step"]


# the CPU recipe the quick pixel-space models share, so that their numbers compare: a ResNet
# U-Net (32-64-64, attention at 7x7, resize-only upsampling, 1.04M parameters), v-prediction
# with min-SNR-5 weighting, the cosine schedule, pixels in [-1, 1], Adam 2e-3 with warm-up and
# a cosine decay to 0, an EMA with warm-up, 2 epochs of the 60,000 digits in batches of 32
# (3,750 steps, ~0.33 s each on 2 Xeon cores), judged on 2,000 samples of DPM-Solver++(2M) at
# 20 steps
QUICK = dict(arch="resunet", base=32, mults=(1, 2, 2), depth=1, attention=(7,),
             upsample="nearest", prediction="v", weighting="min-snr", data_range=(-1.0, 1.0),
             schedule="cosine", ema_warmup=True, ema_decay=0.995, lr=2e-3, lr_warmup=100,
             lr_schedule="cosine", epochs=2, batch_size=32, sampler="dpm++", steps=20,
             n_samples=2000)
# the unconditional quick model (`ddpm --quick`, which classifier guidance steers): the recipe
# with AdaGN blocks (`scale_shift`: the time embedding scales and shifts each block's second
# norm; FID 72.0 -> 68.0 at the same budget, one seed, on the EDM grid)
QUICK_UNCONDITIONAL = {**QUICK, "scale_shift": True}


def make_net(cfg: DiffusionConfig, num_classes: int | None = None):
    """The U-Net `cfg` declares: the book's (`widths`, `norm`, `null_label`) or the ResNet
    U-Net."""
    if cfg.arch == "resunet":
        return diffusion.ResUNet(base=cfg.base, mults=tuple(cfg.mults), depth=cfg.depth,
                                 attention=tuple(cfg.attention), num_classes=num_classes,
                                 upsample=cfg.upsample, scale_shift=cfg.scale_shift)
    return diffusion.UNet(widths=tuple(cfg.widths), norm=cfg.norm, num_classes=num_classes,
                          null_label=cfg.null_label, param_init=cfg.param_init)


def recipe(cfg: DiffusionConfig) -> dict:
    """`train_diffusion`'s keyword arguments that `cfg` declares."""
    return dict(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                lr_warmup=cfg.lr_warmup, lr_schedule=cfg.lr_schedule, ema_decay=cfg.ema_decay,
                ema_warmup=cfg.ema_warmup, schedule=cfg.schedule, T=cfg.T,
                prediction=cfg.prediction, weighting=cfg.weighting,
                data_range=tuple(cfg.data_range))


def training_data(cfg: DiffusionConfig):
    """The MNIST training split (for its source) and cfg.train_size of its images and labels
    (all when None), taken evenly spread over the split: the bundled digits are sorted by label,
    so a leading slice would hold only zeros."""
    data = load_mnist(cfg.train_split)
    if cfg.train_size is None:
        return data, data.images, data.labels
    if cfg.train_size < 1:
        raise ValueError(f"train_size must be None (all) or >= 1, got {cfg.train_size}")
    n = min(cfg.train_size, len(data.images))
    idx = np.arange(n) * len(data.images) // n
    return data, data.images[idx], data.labels[idx]


def judge(ev, images, labels=None) -> dict:
    """The protocol of the README's tables (`evaluate.judge_against_test`): FID, precision and
    recall against all 10,000 test digits with the real-data floor at the same n; the share of
    each predicted digit, mean confidence and, given the asked `labels`, the label accuracy."""
    probs = np.asarray(jax.nn.softmax(evaluate.logits(ev, images), -1))
    predicted = probs.argmax(-1)
    out = {**evaluate.judge_against_test(ev, images),
           "class_shares": (np.bincount(predicted, minlength=10) / len(predicted)).tolist(),
           "mean_confidence": float(probs.max(-1).mean())}
    if labels is not None:
        out["label_accuracy"] = float(np.mean(predicted == np.asarray(labels)))
    return out


def train_unet(out: Path, x, y, cfg: DiffusionConfig, key, *, resume: bool, desc: str,
               p_uncond: float = 0.0):
    """Train `make_net(cfg, num_classes=10 if y is given)` on x (N, *shape) (and labels y)
    with `jaxgen.diffusion.train_diffusion` and `cfg`'s recipe; returns the DiffusionModel to
    sample from, the history and seconds per step."""
    net = make_net(cfg, None if y is None else 10)
    model, hist, _ = train_diffusion(
        net, x, y, key=key, **recipe(cfg), p_uncond=p_uncond,
        per_example_dropout=cfg.dropout_per_example, workdir=out / "train", resume=resume,
        desc=desc)
    return model, hist, seconds_per_step(hist)


class Trained(NamedTuple):
    data: Any  # the MNIST training split (for its source)
    x: np.ndarray  # the training images used
    y: np.ndarray  # their labels
    key: jax.Array  # the run's root key
    model: pipeline.DiffusionModel
    hist: list
    seconds_per_step: float


def train_and_save(cfg: DiffusionConfig, out: Path, *, resume: bool, desc: str,
                   conditional: bool, p_uncond: float = 0.0) -> Trained:
    """The training digits of `cfg`, a U-Net trained on them (label-conditioned or not) from
    the key of `cfg.seed` (or, with `cfg.pretrained`, the shipped one), saved into `out` for
    `jaxgen sample`."""
    data, x, y = training_data(cfg)
    key = jax.random.key(cfg.seed)
    if cfg.pretrained:
        model, hist, sec = load_pretrained(cfg)
    else:
        model, hist, sec = train_unet(out, x, y if conditional else None, cfg, key,
                                      resume=resume, desc=desc, p_uncond=p_uncond)
    pipeline.save(out, model)
    return Trained(data, x, y, key, model, hist, sec)


def seconds_per_step(hist) -> float:
    """Median over epochs (the first, which compiles, left out when there are others)."""
    steps = np.diff([0] + [h["step"] for h in hist])
    per = [h["seconds"] / s for h, s in zip(hist, steps, strict=True)]
    return float(np.median(per[1:] if len(per) > 1 else per)) if per else float("nan")


def sweep(model, key, scales, n: int, ev, *, steps: int, sampler: str = "ddim",
          spacing: str | None = None, guide_fn=None,
          guidance_interval=None) -> tuple[dict, dict]:
    """For each scale: n samples, labels 0..9 cycling, judged. Classifier-free guidance with
    gamma = scale, or, given `guide_fn`, classifier guidance with guide_scale = scale. A
    `guidance_interval` of noise levels limits the guided scales (gamma > 1) only: gamma 0
    (unconditional) and 1 (conditional) stay what they are at every step, where an interval
    would mix unconditional and conditional steps. Also returns each scale's first 80 samples
    (labels 0..9 cycling; the same noise at every scale) for the figures."""
    labels = np.arange(n) % 10
    results, rows = {}, {}
    for s in scales:
        kw = (dict(gamma=float(s), guidance_interval=guidance_interval if s > 1 else None)
              if guide_fn is None else dict(guide_fn=guide_fn, guide_scale=float(s)))
        t0 = time.perf_counter()
        images = pipeline.generate(model, n, labels, sampler=sampler, steps=steps,
                                   spacing=spacing, **kw, key=key,
                                   progress=f"sampling, {'gamma' if guide_fn is None else 's'} "
                                            f"{s:g}")
        seconds = time.perf_counter() - t0
        results[f"{s:g}"] = {**judge(ev, images, labels), "sample_seconds": seconds}
        rows[f"{s:g}"] = images[:80]
    return results, rows


def sweep_figure(rows: dict, path: Path, what: str) -> None:
    """One row per guidance scale, one column per digit 0-9."""
    fig, ax = figure(size=(7, 0.8 * len(rows) + 0.6))
    image_grid(ax, np.concatenate([r[:10] for r in rows.values()]), len(rows),
               f"{what} = {', '.join(rows)} (rows); digits 0-9 (columns)")
    save_figure(fig, path)


def digits_figure(images, path: Path, title: str) -> None:
    """images (10 k, 28, 28, 1) with labels cycling 0..9 -> one row per digit."""
    k = len(images) // 10
    ordered = np.asarray(images[: 10 * k]).reshape(k, 10, 28, 28).transpose(1, 0, 2, 3)
    fig, ax = figure(size=(0.7 * k + 0.5, 7.5))
    image_grid(ax, ordered.reshape(-1, 28, 28), 10, title)
    save_figure(fig, path)


def loss_figure(hist, path: Path, title: str) -> None:
    fig, ax = figure()
    ax.plot([h["epoch"] for h in hist], [h["loss"] for h in hist], "o-")
    ax.set(title=title, xlabel="epoch", ylabel="loss", yscale="log")
    save_figure(fig, path)
