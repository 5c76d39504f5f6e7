"""Latent diffusion, "Stable Diffusion" in miniature (book chapter 10's text): a convolutional
autoencoder compresses 28x28 digits to 8x8x2 latents (6x fewer numbers), a label-conditioned
U-Net with classifier-free guidance is trained on the scaled latents, and samples are decoded.
Compare its time and quality with pixel-space CFG (`jaxgen run cfg`)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np
import optax

from jaxgen import evaluate
from jaxgen.data import load_mnist, map_batches
from jaxgen.diffusion import pipeline
from jaxgen.diffusion.latent import Autoencoder, make_loss
from jaxgen.experiments import _diffusion as common
from jaxgen.experiments._common import image_grid
from jaxgen.io import figure, save_figure
from jaxgen.train import train


@dataclasses.dataclass(frozen=True)
class Config(common.DiffusionConfig):
    """Settings (defaults: the `full` preset)."""

    shipped_model = "latent-diffusion"

    ae_batch_size: int = 64  # the autoencoder's minibatch
    widths: tuple[int, ...] = (64, 128)
    epochs: int = 80
    ae_epochs: int = 30
    p_uncond: float = 0.1
    latent_channels: int = 2
    gammas: tuple[float, ...] = (0.0, 1.0, 3.0, 5.0)  # guidance scales swept


PRESETS = {
    "full": Config(),
    # the CPU recipe's training choices (v-prediction, min-SNR, cosine, EMA warm-up,
    # DPM-Solver++) on the 60,000 digits: the autoencoder one epoch, the latent U-Net six
    # (5,622 steps of batch 64); guidance swept as in `cfg --quick`
    "quick": Config(ae_epochs=1, epochs=6, batch_size=64, prediction="v", weighting="min-snr",
                    schedule="cosine", ema_decay=0.995, ema_warmup=True, lr_warmup=100,
                    sampler="dpm++", steps=10, n_samples=2000, gammas=(0.0, 1.0, 3.0)),
}


def train_and_evaluate(cfg: Config, out: Path, *, resume: bool = False) -> dict:
    data, x, y = common.training_data(cfg)
    key = jax.random.key(cfg.seed)
    if cfg.pretrained:  # the shipped model holds its autoencoder too
        model, hist, sec = common.load_pretrained(cfg)
        ae, ae_vars = model.autoencoder, {"params": model.variables["autoencoder"]}
        ae_seconds, ae_loss, scale = None, None, model.latent_scale
    else:
        ae = Autoencoder(cfg.latent_channels)
        k_init, k_train = jax.random.split(jax.random.fold_in(key, 5))  # one key per use
        t0 = time.perf_counter()
        ae_state, ae_hist = train(make_loss(ae), jax.jit(ae.init)(k_init, x[:1])["params"],
                                  optax.adam(1e-3), (x,), key=k_train, epochs=cfg.ae_epochs,
                                  batch_size=cfg.ae_batch_size, workdir=out / "autoencoder",
                                  resume=resume, desc="autoencoder")
        ae_seconds, ae_loss = time.perf_counter() - t0, ae_hist[-1]["loss"]
        ae_vars = {"params": ae_state.params}
        encode = jax.jit(lambda v: ae.apply(ae_vars, v, method=Autoencoder.encode))
        z = map_batches(lambda v: np.asarray(encode(v)), (x,))
        scale = float(np.std(z))
        model, hist, sec = common.train_unet(out, z / scale, y, cfg, key, resume=resume,
                                             desc="latent CFG DDPM", p_uncond=cfg.p_uncond)
        model = dataclasses.replace(model, variables={**model.variables,
                                                      "autoencoder": ae_state.params},
                                    autoencoder=ae, latent_scale=scale)
    pipeline.save(out, model)

    ev, test = evaluate.load(), load_mnist("test")
    reference = test.images[: cfg.n_samples]  # reconstructed test digits, judged as samples
    recon = map_batches(lambda v: np.asarray(jax.nn.sigmoid(ae.apply(ae_vars, v))),
                        (reference,))
    recon_quality = common.judge(ev, recon, test.labels[: len(reference)])
    results, rows = common.sweep(model, jax.random.fold_in(key, 1), cfg.gammas, cfg.n_samples,
                                 ev, steps=cfg.steps, sampler=cfg.sampler,
                                 spacing=cfg.spacing)
    common.sweep_figure(rows, out / "guidance_sweep.png", "gamma (latent)")
    common.digits_figure(rows["3"], out / "digits.png", "latent diffusion + CFG, gamma = 3")
    fig_recon = np.concatenate([reference[:10], recon[:10]])
    fig, ax = figure(size=(7, 1.8))
    image_grid(ax, fig_recon, 2, "test digits (top) and autoencoder reconstructions")
    save_figure(fig, out / "reconstructions.png")
    g3 = results["3"]
    return {"data_source": data.source, "train_size": len(x), "config": dataclasses.asdict(cfg),
            "pretrained": cfg.pretrained,
            "latent_shape": list(model.shape), "latent_scale": scale,
            "compression": float(np.prod(x.shape[1:]) / np.prod(model.shape)),
            "autoencoder_seconds": ae_seconds, "autoencoder_final_loss": ae_loss,
            "reconstruction": {"mse": float(np.mean((recon - reference) ** 2)),
                               "fid": recon_quality["fid"],
                               "fid_floor": recon_quality["floor"]["fid"],
                               "label_accuracy": recon_quality["label_accuracy"]},
            "seconds_per_step": sec, "epoch_loss": [h["loss"] for h in hist],
            "unet_params": sum(p.size for p in jax.tree_util.tree_leaves(
                model.variables["unet"])),
            "by_gamma": results, "label_accuracy": g3["label_accuracy"], "fid": g3["fid"],
            "class_shares": g3["class_shares"],
            "headline": ", ".join(f"gamma {g}: acc {r['label_accuracy']:.3f} FID {r['fid']:.1f}"
                                  for g, r in results.items())
                        + f" (real-data floor {g3['floor']['fid']:.1f} at n = {g3['n']})",
            "figures": ["guidance_sweep.png", "digits.png", "reconstructions.png"]}
