"""Chapter 9: DDPM on MNIST. `full` is the book: its BatchNorm U-Net, Adam 1e-3, batch 128,
pixels in [0, 1], T = 1000, linear betas, eps-MSE, sampled with the ancestral sampler (and
DDIM). `quick` is the CPU recipe (`_diffusion.QUICK`: ResNet U-Net, v-prediction, min-SNR,
cosine schedule, [-1, 1], EMA warm-up, SDE-DPM-Solver++). Samples are judged against all 10,000
test digits beside the real-data floor (FID, precision, recall, label shares, confidence)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np

from jaxgen import diffusion, evaluate
from jaxgen.config import ConfigError
from jaxgen.data import load_mnist
from jaxgen.diffusion import ddpm, pipeline
from jaxgen.diffusion.prediction import eps_model
from jaxgen.diffusion.training import train_diffusion
from jaxgen.experiments import _diffusion as common
from jaxgen.experiments._common import image_grid
from jaxgen.experiments._diffusion import judge, training_data
from jaxgen.io import figure, save_figure


@dataclasses.dataclass(frozen=True)
class Config(common.DiffusionConfig):
    """Settings (defaults: the `full` preset)."""

    shipped_model = "ddpm"
    widths: tuple[int, ...] = (64, 128, 256)
    epochs: int = 10
    norm: str = "batch"  # the book's BatchNorm U-Net
    n_samples: int = 10000
    # samplers judged, 'name-steps' (ddpm always takes all T steps); the first is the headline
    samplers: tuple[str, ...] = ("ddpm-1000", "ddim-50", "ddim-100")

    def __post_init__(self):
        super().__post_init__()
        for spec in self.samplers:
            name, _, steps = spec.rpartition("-")
            ok = name in pipeline.SAMPLERS and steps.isdigit() and 1 <= int(steps) <= self.T
            if not ok:
                raise ConfigError(f"--set samplers: expected entries like ddpm-{self.T}, "
                                  f"ddim-50 or dpm++-20 (steps in 1..{self.T}), got {spec!r}")


PRESETS = {
    # the book: its U-Net with BatchNorm and PyTorch's initialisation, 10 epochs of batch 128
    # (2.3 s a step on 2 Xeon cores), no parameter EMA
    "full": Config(ema_decay=None, param_init="torch"),
    # the CPU recipe shared by the quick diffusion experiments, with AdaGN blocks
    # (`common.QUICK_UNCONDITIONAL`), judged at 20 steps of the stochastic DPM-Solver++ on the
    # EDM time grid (on the recipe's model without AdaGN: FID 72.0, where the log-SNR grid gives
    # 78.6, the ODE's 20 steps 100.7 and DDPM-1000 is between them; `jaxgen bench samplers`)
    "quick": Config(**{**common.QUICK_UNCONDITIONAL, "samplers": ("dpm++sde-20",),
                       "spacing": "karras"}),
}


def _sample(model, spec: str, n: int, key, spacing: str | None) -> tuple[np.ndarray, float]:
    """n images from the sampler `spec` ('name-steps'); `spacing` is its time grid (the
    ancestral ddpm sampler takes every timestep and ignores it)."""
    name, _, steps = spec.rpartition("-")
    t0 = time.perf_counter()
    images = pipeline.generate(model, n, sampler=name, steps=int(steps), key=key,
                               spacing=None if name == "ddpm" else spacing,
                               progress=f"sampling, {spec}")
    return images, time.perf_counter() - t0


def train_and_evaluate(cfg: Config, out: Path, *, resume: bool = False) -> dict:
    train_set, x, _ = training_data(cfg)
    net = common.make_net(cfg)
    key = jax.random.key(cfg.seed)
    t0 = time.perf_counter()
    if cfg.pretrained:
        model, hist, _ = common.load_pretrained(cfg)
        steps, train_seconds = hist[-1]["step"], sum(h["seconds"] for h in hist)
    else:
        model, hist, state = train_diffusion(net, x, key=key, **common.recipe(cfg),
                                             workdir=out / "train", resume=resume, desc="DDPM")
        steps, train_seconds = int(state.step), time.perf_counter() - t0
    pipeline.save(out, model)

    ev = evaluate.load()
    samples, quality = {}, {}
    for i, spec in enumerate(cfg.samplers):
        images, seconds = _sample(model, spec, cfg.n_samples, jax.random.fold_in(key, 1 + i),
                                  cfg.spacing)
        samples[spec] = images
        quality[spec] = {**judge(ev, images), "sample_seconds": round(seconds, 1)}

    # four ancestral chains, 10 snapshots each, for the trajectory figure
    schedule, sample_vars = model.noise_schedule, model.variables["unet"]
    eps_fn = eps_model(model.prediction,
                       lambda xt, t: net.apply(sample_vars, xt, t, train=False), schedule)
    lo, hi = model.data_range
    _, path = jax.jit(lambda k: ddpm.sample(eps_fn, (4, 28, 28, 1), schedule, keep=10,
                                            clip=(lo, hi), key=k))(jax.random.fold_in(key, 9))
    path = (np.asarray(path) - lo) / (hi - lo)
    bpd = None
    if (lo, hi) == (0.0, 1.0):  # the bound is defined on [0, 1] pixels with 256 bins
        test = load_mnist("test")
        # the variational bound on 256 test digits, 32 timesteps each (an unbiased estimate)
        bpd = float(np.mean(jax.jit(lambda k, x0: diffusion.bits_per_dim(
            eps_fn, x0, schedule, n_t=32, key=k))(jax.random.fold_in(key, 3), test.images[:256])))

    fig, axes = figure(1, len(samples), size=(3 * len(samples), 3.3))
    for ax, (spec, images) in zip(np.atleast_1d(axes), samples.items(), strict=True):
        image_grid(ax, images[:64], 8, spec)
    save_figure(fig, out / "samples.png")
    fig, ax = figure(size=(10, 4))
    traj = np.clip(path, 0, 1).transpose(1, 0, 2, 3, 4).reshape(-1, 28, 28)
    image_grid(ax, traj, 4, "denoising trajectories, t = 1000 -> 1 (left to right)")
    save_figure(fig, out / "trajectory.png")
    fig, ax = figure()
    ax.plot([h["epoch"] for h in hist], [h["loss"] for h in hist], "o-")
    ax.set(title=f"DDPM training loss ({cfg.prediction}, {cfg.weighting})", xlabel="epoch",
           ylabel="loss", yscale="log")
    save_figure(fig, out / "loss.png")
    head = cfg.samplers[0]
    q = quality[head]
    return {
        "data_source": train_set.source, "train_size": len(x),
        "unet_params": sum(p.size for p in jax.tree_util.tree_leaves(
            model.variables["unet"]["params"])),
        "pretrained": cfg.pretrained, "steps": steps, "train_seconds": round(train_seconds, 1),
        "seconds_per_step": common.seconds_per_step(hist),
        "epoch_loss": [h["loss"] for h in hist], "epoch_seconds": [h["seconds"] for h in hist],
        "quality": quality, "fid": q["fid"], "fid_floor": q["floor"]["fid"],
        "precision": q["precision"], "recall": q["recall"], "class_shares": q["class_shares"],
        "mean_confidence": q["mean_confidence"], "test_bits_per_dim": bpd,
        "book": {"epoch_loss_first_last": [0.0462, 0.0181], "note": "60,000 digits"},
        "headline": f"loss {hist[0]['loss']:.4f} -> {hist[-1]['loss']:.4f}; {head}: FID "
                    f"{q['fid']:.1f} (real-data floor {q['floor']['fid']:.1f}), precision "
                    f"{q['precision']:.2f}, recall {q['recall']:.2f}, confidence "
                    f"{q['mean_confidence']:.2f} ({cfg.n_samples} samples)",
        "figures": ["samples.png", "trajectory.png", "loss.png"],
    }
