"""Classifier guidance (book chapter 10's text; Dhariwal & Nichol 2021): an unconditional DDPM
steered by a classifier of noised images, eps <- eps - s sqrt(1 - alpha_bar_t) grad log p(y|x_t)
(jax.grad inside the compiled sampler), for s in {0, 1, 3, 5}. `quick` guides the unconditional
model of `ddpm --quick` (the CPU recipe; the shipped one with `--set pretrained=true`), with a
classifier trained on the same pixel range and schedule; its accuracy is reported per band of t,
which says where along the chain its gradient can steer."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from jaxgen import evaluate
from jaxgen.data import load_mnist
from jaxgen.diffusion import guidance, noisy_classifier
from jaxgen.experiments import _diffusion as common
from jaxgen.train import train


@dataclasses.dataclass(frozen=True)
class Config(common.DiffusionConfig):
    """Settings (defaults: the `full` preset)."""

    shipped_model = "ddpm"  # its unconditional model is ddpm's

    classifier_epochs: int = 20
    classifier_batch_size: int = 128
    classifier_widths: tuple[int, ...] = (32, 64)  # the noisy classifier's channels per stage
    classifier_lr: float = 1e-3  # Adam
    scales: tuple[float, ...] = (0.0, 1.0, 3.0, 5.0)  # classifier scales swept


PRESETS = {
    "full": Config(),
    # the unconditional model of `ddpm --quick` (the same budget as the other quick models);
    # the classifier sees the 60,000 digits twice; 10 DPM-Solver++ steps, as `cfg --quick`
    "quick": Config(**{**common.QUICK_UNCONDITIONAL, "steps": 10}, classifier_epochs=2,
                    scales=(0.0, 1.0, 3.0)),
}


def train_and_evaluate(cfg: Config, out: Path, *, resume: bool = False) -> dict:
    data, x, y, key, model, hist, sec = common.train_and_save(
        cfg, out, resume=resume, desc="unconditional DDPM", conditional=False)

    clf = noisy_classifier.NoisyClassifier(widths=cfg.classifier_widths)
    k_init, k_clf = jax.random.split(jax.random.fold_in(key, 7))  # one key per use
    clf_params = jax.jit(clf.init)(k_init, x[:1], jnp.ones((1,), jnp.int32))["params"]
    loss = noisy_classifier.make_loss(clf, model.noise_schedule, tuple(model.data_range))
    clf_state, clf_hist = train(loss, clf_params, optax.adam(cfg.classifier_lr), (x, y),
                                key=k_clf, epochs=cfg.classifier_epochs,
                                batch_size=cfg.classifier_batch_size,
                                workdir=out / "classifier", resume=resume,
                                desc="noisy classifier")
    logits_fn = lambda xt, t: clf.apply({"params": clf_state.params}, xt, t)  # noqa: E731
    guide_fn = functools.partial(guidance.classifier_grad, logits_fn)  # y -> grad log p(y|x_t)
    test = load_mnist("test")
    by_t = jax.jit(functools.partial(noisy_classifier.accuracy_by_t, logits_fn,
                                     schedule=model.noise_schedule,
                                     data_range=tuple(model.data_range)))(
        test.images[:2000], test.labels[:2000], key=jax.random.fold_in(key, 8))

    results, rows = common.sweep(model, jax.random.fold_in(key, 1), cfg.scales, cfg.n_samples,
                                 evaluate.load(), steps=cfg.steps, sampler=cfg.sampler,
                                 spacing=cfg.spacing,
                                 guide_fn=guide_fn)
    common.sweep_figure(rows, out / "guidance_sweep.png", "classifier scale s")
    common.loss_figure(hist, out / "loss.png", "unconditional DDPM training loss")
    best = max(results, key=lambda s: results[s]["label_accuracy"])
    return {"data_source": data.source, "train_size": len(x), "config": dataclasses.asdict(cfg),
            "seconds_per_step": sec, "epoch_loss": [h["loss"] for h in hist],
            "pretrained": cfg.pretrained,
            "classifier_noisy_accuracy": clf_hist[-1]["accuracy"],
            "classifier_test_accuracy_by_t": {
                f"{b * model.T // len(by_t) + 1}-{(b + 1) * model.T // len(by_t)}": float(a)
                for b, a in enumerate(by_t)},
            "by_scale": results, "label_accuracy": results[best]["label_accuracy"],
            "fid": results[best]["fid"], "class_shares": results[best]["class_shares"],
            "best_scale": float(best),
            "headline": ", ".join(f"s {s}: acc {r['label_accuracy']:.3f} FID {r['fid']:.1f}"
                                  for s, r in results.items())
                        + f" (real-data floor {results[best]['floor']['fid']:.1f})",
            "figures": ["guidance_sweep.png", "loss.png"]}
