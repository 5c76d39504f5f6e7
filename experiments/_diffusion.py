"""What the diffusion experiments share: training an epsilon U-Net with `jaxgen.train`, judging
samples with the evaluator, guidance sweeps and their figures (the maths lives in jaxgen)."""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import diffusion, evaluate
from jaxgen.data import load_mnist
from jaxgen.diffusion import pipeline
from jaxgen.diffusion.objective import make_loss
from jaxgen.experiments._common import image_grid
from jaxgen.io import figure, save_figure
from jaxgen.train import train


def training_data(cfg: dict):
    """The MNIST training split (for its source) and cfg['train_size'] of its images and labels
    (all when None), taken evenly spread over the split: the bundled digits are sorted by label,
    so a leading slice would hold only zeros."""
    data = load_mnist("train")
    if cfg["train_size"] is None:
        return data, data.images, data.labels
    if cfg["train_size"] < 1:
        raise ValueError(f"train_size must be None (all) or >= 1, got {cfg['train_size']}")
    n = min(cfg["train_size"], len(data.images))
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


def train_unet(out: Path, x, y, cfg: dict, key, *, resume: bool, desc: str,
               p_uncond: float = 0.0, shape=(28, 28, 1)):
    """Train `UNet(cfg['widths'], GroupNorm, num_classes=10 if y is given)` on x (N, *shape)
    (and labels y) with Adam(cfg['lr']) and a parameter EMA; returns the DiffusionModel to
    sample from (the EMA once it has forgotten its start), the history and seconds per step."""
    net = diffusion.UNet(widths=tuple(cfg["widths"]), norm="group",
                         num_classes=None if y is None else 10)
    t1 = jnp.ones((1,), jnp.int32)
    params = jax.jit(net.init)(key, jnp.zeros((1, *shape)), t1)["params"]
    data = (x,) if y is None else (x, y)
    loss = make_loss(net, diffusion.linear(), stateful=False, p_uncond=p_uncond,
                     per_example_dropout=cfg.get("dropout_per_example", True))
    state, hist = train(loss,
                        params, optax.adam(cfg.get("lr", 1e-3)), data, key=key,
                        epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                        workdir=out / "train", resume=resume, desc=desc,
                        ema_decay=cfg["ema_decay"], log_every=10)
    use_ema = int(state.step) >= 2 / (1 - cfg["ema_decay"])
    model = pipeline.DiffusionModel(net, {"unet": {"params": state.ema_params if use_ema
                                                   else state.params}},
                                    tuple(shape), p_uncond=p_uncond)
    return model, hist, seconds_per_step(hist)


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
        images = pipeline.generate(model, key, n, labels, steps=steps, **kw)
        seconds = time.perf_counter() - t0
        results[str(s)] = {**judge(ev, images, reference, labels), "sample_seconds": seconds}
        rows[str(s)] = images[:80]
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
