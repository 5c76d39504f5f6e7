"""Chapter 10: a class-conditional DDPM (the label embedding added to the time embedding), asked
for each digit; samples judged by the evaluator (label accuracy, MNIST-FID). No label dropout,
as the book's first conditional model: see `cfg` for guidance."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from jaxgen import evaluate
from jaxgen.diffusion import pipeline
from jaxgen.experiments import _diffusion as common


@dataclasses.dataclass(frozen=True)
class Config(common.DiffusionConfig):
    """Settings (defaults: the `full` preset)."""

    shipped_model = "conditional"


PRESETS = {
    # the book's chapter 10 conditional model: BatchNorm U-Net 64-128-256 + nn.Embedding(10, 100)
    # added to the time embedding, 10 epochs of batch 128, no EMA
    "full": Config(widths=(64, 128, 256), norm="batch", null_label="skip", epochs=10,
                   ema_decay=None, param_init="torch"),
    # the same recipe and budget as `cfg --quick`, so the two compare
    "quick": Config(**common.QUICK),
}


def train_and_evaluate(cfg: Config, out: Path, *, resume: bool = False) -> dict:
    data, x, _, key, model, hist, sec = common.train_and_save(
        cfg, out, resume=resume, desc="conditional DDPM", conditional=True)
    n = cfg.n_samples
    labels = np.arange(n) % 10
    images = pipeline.generate(model, n, labels, sampler=cfg.sampler, steps=cfg.steps,
                               spacing=cfg.spacing,
                               key=jax.random.fold_in(key, 1), progress="sampling")
    q = common.judge(evaluate.load(), images, labels)
    common.digits_figure(images[:80], out / "digits.png",
                         f"conditional DDPM, {cfg.sampler}-{cfg.steps}: one row per digit")
    common.loss_figure(hist, out / "loss.png", "conditional DDPM training loss")
    return {"data_source": data.source, "train_size": len(x), "config": dataclasses.asdict(cfg),
            "pretrained": cfg.pretrained,
            "seconds_per_step": sec, "epoch_loss": [h["loss"] for h in hist],
            "label_accuracy": q["label_accuracy"], "fid": q["fid"], "quality": q,
            "class_shares": q["class_shares"], "mean_confidence": q["mean_confidence"],
            "headline": f"label accuracy {q['label_accuracy']:.3f}, FID {q['fid']:.1f} "
                        f"(real-data floor {q['floor']['fid']:.1f}), precision "
                        f"{q['precision']:.2f}, recall {q['recall']:.2f} ({n} samples, "
                        f"{cfg.sampler}-{cfg.steps})",
            "figures": ["digits.png", "loss.png"]}
