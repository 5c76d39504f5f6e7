"""What the diffusion experiments share: training an epsilon U-Net with `jaxgen.train`, judging
samples with the evaluator, guidance sweeps and their figures (the maths lives in jaxgen)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxgen import diffusion, evaluate
from jaxgen.config import ConfigError
from jaxgen.data import load_mnist
from jaxgen.diffusion import pipeline
from jaxgen.diffusion.training import train_diffusion
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
    ema_decay: float = 0.999
    n_samples: int = 1000  # generated images judged
    steps: int = 50  # DDIM steps when sampling
    train_size: int | None = None  # training digits, evenly spread (None: all)
    train_split: str = "train"  # MNIST split trained on: 'train' (60,000) or 'train-5k'
    schedule: str = "linear"  # noise schedule: linear (the book) or cosine
    T: int = 1000  # training timesteps

    def __post_init__(self):
        if self.schedule not in pipeline.SCHEDULES:
            raise ConfigError(f"--set schedule: expected one of {', '.join(pipeline.SCHEDULES)}, "
                              f"got {self.schedule!r}")
        check_train_split(self.train_split)
        if self.T < 1:
            raise ConfigError(f"--set T: expected an int >= 1, got {self.T}")


# the CPU budget the quick pixel-space models share, so that their numbers compare: a 16-32-64
# U-Net, 100 epochs of batch 64 on the 5,000-digit subset (7,800 steps)
QUICK = dict(widths=(16, 32, 64), epochs=100, batch_size=64, train_split="train-5k")


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


def evaluator_and_test(n_samples: int):
    """The shipped evaluator, the MNIST test split and the FID reference (>= 1,000 digits)."""
    ev, test = evaluate.load(), load_mnist("test")
    return ev, test, test.images[: max(1000, n_samples)]


def judge(ev, images, reference, labels=None) -> dict:
    """MNIST-FID against `reference`, the share of each predicted digit, mean confidence and,
    given the asked `labels`, the label accuracy."""
    probs = np.asarray(jax.nn.softmax(evaluate.logits(ev, images), -1))
    predicted = probs.argmax(-1)
    out = {"fid": evaluate.fid(ev, images, reference),
           "class_shares": (np.bincount(predicted, minlength=10) / len(predicted)).tolist(),
           "mean_confidence": float(probs.max(-1).mean())}
    if labels is not None:
        out["label_accuracy"] = float(np.mean(predicted == np.asarray(labels)))
    return out


def train_unet(out: Path, x, y, cfg: DiffusionConfig, key, *, resume: bool, desc: str,
               p_uncond: float = 0.0, per_example_dropout: bool = True):
    """Train `UNet(cfg.widths, GroupNorm, num_classes=10 if y is given)` on x (N, *shape) (and
    labels y) with `jaxgen.diffusion.train_diffusion`; returns the DiffusionModel to sample
    from, the history and seconds per step."""
    net = diffusion.UNet(widths=tuple(cfg.widths), norm="group",
                         num_classes=None if y is None else 10)
    model, hist, _ = train_diffusion(
        net, x, y, key=key, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
        ema_decay=cfg.ema_decay, schedule=cfg.schedule, T=cfg.T, p_uncond=p_uncond,
        per_example_dropout=per_example_dropout, workdir=out / "train", resume=resume,
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
                   conditional: bool, p_uncond: float = 0.0,
                   per_example_dropout: bool = True) -> Trained:
    """The training digits of `cfg`, a U-Net trained on them (label-conditioned or not) from
    the key of `cfg.seed`, saved into `out` for `jaxgen sample`."""
    data, x, y = training_data(cfg)
    key = jax.random.key(cfg.seed)
    model, hist, sec = train_unet(out, x, y if conditional else None, cfg, key, resume=resume,
                                  desc=desc, p_uncond=p_uncond,
                                  per_example_dropout=per_example_dropout)
    pipeline.save(out, model)
    return Trained(data, x, y, key, model, hist, sec)


def seconds_per_step(hist) -> float:
    """Median over epochs (the first, which compiles, left out when there are others)."""
    steps = np.diff([0] + [h["step"] for h in hist])
    per = [h["seconds"] / s for h, s in zip(hist, steps, strict=True)]
    return float(np.median(per[1:] if len(per) > 1 else per)) if per else float("nan")


def sweep(model, key, scales, n: int, ev, reference, *, steps: int,
          guide_fn=None) -> tuple[dict, dict]:
    """For each scale: n samples, labels 0..9 cycling, judged. Classifier-free guidance with
    gamma = scale, or, given `guide_fn`, classifier guidance with guide_scale = scale. Also
    returns each scale's first 80 samples (labels 0..9 cycling; the same noise at every
    scale) for the figures."""
    labels = np.arange(n) % 10
    results, rows = {}, {}
    for s in scales:
        kw = (dict(gamma=float(s)) if guide_fn is None
              else dict(guide_fn=guide_fn, guide_scale=float(s)))
        t0 = time.perf_counter()
        images = pipeline.generate(model, n, labels, steps=steps, **kw, key=key)
        seconds = time.perf_counter() - t0
        results[f"{s:g}"] = {**judge(ev, images, reference, labels), "sample_seconds": seconds}
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
