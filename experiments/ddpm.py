"""Chapter 9: DDPM on MNIST with the book's U-Net: train (Adam 1e-3, batch 128, pixels in
[0, 1], T=1000, linear betas, parameter EMA), sample with the compiled ancestral sampler and with
DDIM, and judge the samples with the project's evaluator (label shares, confidence, MNIST-FID)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from jaxgen import diffusion, evaluate
from jaxgen.data import load_mnist
from jaxgen.diffusion import ddpm, pipeline
from jaxgen.diffusion.training import ema_ready, train_diffusion
from jaxgen.experiments import _diffusion as common
from jaxgen.experiments._common import image_grid
from jaxgen.experiments._diffusion import judge, training_data
from jaxgen.io import figure, save_figure


@dataclasses.dataclass(frozen=True)
class Config(common.DiffusionConfig):
    """Settings (defaults: the `full` preset)."""

    widths: tuple[int, ...] = (64, 128, 256)
    epochs: int = 10
    norm: str = "batch"  # the book's BatchNorm U-Net
    ddim_steps: tuple[int, ...] = (50, 100)  # DDIM step counts judged beside DDPM-1000


PRESETS = {
    # the book: its U-Net with BatchNorm, 10 epochs of batch 128 (~5 s a step on a 2-core CPU)
    "full": Config(),
    # CPU: a narrow GroupNorm U-Net, 100 epochs of the 5,000 bundled digits (7,800 steps,
    # ~0.3 s each on 2 cores, the budget of the other quick diffusion experiments); sampling
    # 1,000 images with DDPM-1000 takes about as long again
    "quick": Config(**common.QUICK, norm="group"),
}
CLIP = (0.0, 1.0)  # clip x0_hat to the pixel range while sampling (beyond the book)


def train_and_evaluate(cfg: Config, out: Path, *, resume: bool = False) -> dict:
    train_set, x, _ = training_data(cfg)
    net = diffusion.UNet(widths=cfg.widths, norm=cfg.norm)
    key = jax.random.key(cfg.seed)
    model, hist, state = train_diffusion(
        net, x, key=key, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
        ema_decay=cfg.ema_decay, schedule=cfg.schedule, T=cfg.T, workdir=out / "train",
        resume=resume, desc="DDPM")
    schedule, sample_vars = model.noise_schedule, model.variables["unet"]
    eps_fn = lambda xt, t: net.apply(sample_vars, xt, t, train=False)  # noqa: E731
    shape = (cfg.n_samples, 28, 28, 1)
    x_ddpm, path = jax.jit(lambda k: ddpm.sample(eps_fn, shape, schedule, keep=10,
                                                    clip=CLIP, key=k))(
        jax.random.fold_in(key, 1))
    x_ddim = {steps: np.clip(np.asarray(jax.jit(lambda k, n=steps: ddpm.ddim_sample(
        eps_fn, shape, schedule, n, clip=CLIP, key=k))(jax.random.fold_in(key, 2))), 0, 1)
        for steps in cfg.ddim_steps}
    x_ddpm = np.clip(np.asarray(x_ddpm), 0, 1)
    pipeline.save(out, model)

    ev, test = evaluate.load(), load_mnist("test")
    reference = test.images[: max(1000, cfg.n_samples)]
    quality = {"ddpm_1000": judge(ev, x_ddpm, reference),
               **{f"ddim_{n}": judge(ev, x, reference) for n, x in x_ddim.items()}}
    # the variational bound on 256 test digits, 32 timesteps each (an unbiased estimate)
    bpd = jax.jit(lambda k, x0: diffusion.bits_per_dim(eps_fn, x0, schedule, n_t=32, key=k))(
        jax.random.fold_in(key, 3), test.images[:256])

    fig, axes = figure(1, 2, size=(6, 6))
    image_grid(axes[0], x_ddpm[:64], 8, "DDPM, 1000 steps")
    image_grid(axes[1], x_ddim[cfg.ddim_steps[0]][:64], 8, f"DDIM, {cfg.ddim_steps[0]} steps")
    save_figure(fig, out / "samples.png")
    fig, ax = figure(size=(10, 4))
    traj = np.clip(np.asarray(path[:, :4]), 0, 1).transpose(1, 0, 2, 3, 4).reshape(-1, 28, 28)
    image_grid(ax, traj, 4, "denoising trajectories, t = 1000 -> 1 (left to right)")
    save_figure(fig, out / "trajectory.png")
    fig, ax = figure()
    ax.plot([h["epoch"] for h in hist], [h["loss"] for h in hist], "o-")
    ax.set(title="DDPM training loss (eps-MSE)", xlabel="epoch", ylabel="loss", yscale="log")
    save_figure(fig, out / "loss.png")
    q = quality["ddpm_1000"]
    return {
        "data_source": train_set.source, "train_size": len(x), "config": dataclasses.asdict(cfg),
        "unet_params": sum(p.size for p in jax.tree_util.tree_leaves(state.params)),
        "sampled_with_ema": ema_ready(int(state.step), cfg.ema_decay),
        "epoch_loss": [h["loss"] for h in hist], "epoch_seconds": [h["seconds"] for h in hist],
        "quality": quality, "fid": q["fid"], "class_shares": q["class_shares"],
        "test_bits_per_dim": float(np.mean(bpd)),
        "book": {"epoch_loss_first_last": [0.0462, 0.0181], "note": "60,000 digits"},
        "headline": f"loss {hist[0]['loss']:.4f} -> {hist[-1]['loss']:.4f}; DDPM-1000 FID "
                    f"{q['fid']:.1f}, confidence {q['mean_confidence']:.2f}, "
                    f"{float(np.mean(bpd)):.2f} bits/dim "
                    f"({cfg.n_samples} samples)",
        "figures": ["samples.png", "trajectory.png", "loss.png"],
    }
