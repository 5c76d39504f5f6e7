"""Classifier-free guidance in a limited interval (Kynkaanniemi et al. 2024) on one trained
model: for each noise-level interval (sigma_lo, sigma_hi] and each guidance scale gamma, n
samples (labels 0..9 in turn) judged by `evaluate.judge_against_test` beside the real-data
floor at the same n, with label accuracy and wall time. Guidance everywhere (the book's CFG) is
the row with interval `none`.

`$JAXGEN_GUIDANCE_MODEL`: a `jaxgen run` folder or a shipped model's name (default the shipped
`cfg`); `$JAXGEN_GUIDANCE_N` samples per row (default 2,000); `$JAXGEN_GUIDANCE_GAMMAS`
(comma-separated, default 3); `$JAXGEN_GUIDANCE_INTERVALS` (`;`-separated `lo,hi` or `none`);
`$JAXGEN_GUIDANCE_SAMPLER` as `name-steps` (default `dpm++-10`, what `cfg --quick` judges with);
`$JAXGEN_GUIDANCE_SPACING`: its time grid (`uniform`, `logsnr` or `karras`; default the
sampler's own, see `pipeline.generate`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import jax
import numpy as np

from jaxgen.benchmarks.common import BenchSettingError, env_int, load_diffusion_model, machine
from jaxgen.diffusion import ddpm, pipeline, pretrained
from jaxgen.experiments._diffusion import judge

# none, the interval the paper found for ImageNet-512 (EDM2), and ones open at either end
INTERVALS = "none;0.28,5.42;0.28,inf;1,inf;0,5.42"


def _intervals(text: str) -> list[tuple[float, float] | None]:
    out = []
    for part in text.split(";"):
        if part.strip() == "none":
            out.append(None)
            continue
        try:
            lo, hi = (float(v) for v in part.split(","))
            pipeline.check_interval((lo, hi))
        except ValueError:
            raise BenchSettingError(f"JAXGEN_GUIDANCE_INTERVALS: expected ';'-separated lo,hi "
                                    f"(0 <= lo < hi) or none, got {part!r}") from None
        out.append((lo, hi))
    return out


def _settings(quick: bool):
    try:
        gammas = [float(g) for g in os.environ.get("JAXGEN_GUIDANCE_GAMMAS", "3").split(",")]
    except ValueError:
        gammas = None
    if not gammas or any(not np.isfinite(g) or g < 0 for g in gammas):
        raise BenchSettingError(f"JAXGEN_GUIDANCE_GAMMAS: expected comma-separated numbers >= "
                                f"0, got {os.environ.get('JAXGEN_GUIDANCE_GAMMAS')!r}")
    spec = os.environ.get("JAXGEN_GUIDANCE_SAMPLER", "dpm++-10")
    name, _, steps = spec.rpartition("-")
    if name not in pipeline.SAMPLERS or not steps.isdigit() or int(steps) < 1:
        raise BenchSettingError(f"JAXGEN_GUIDANCE_SAMPLER: expected name-steps with a name from "
                                f"{', '.join(pipeline.SAMPLERS)}, got {spec!r}")
    spacing = os.environ.get("JAXGEN_GUIDANCE_SPACING") or None
    try:
        pipeline.check_spacing(name, spacing)
    except ValueError:
        raise BenchSettingError(f"JAXGEN_GUIDANCE_SPACING: expected one of "
                                f"{', '.join(ddpm.SPACINGS)} for a sampler other than ddpm, "
                                f"got {spacing!r}") from None
    intervals = _intervals(os.environ.get("JAXGEN_GUIDANCE_INTERVALS", INTERVALS))
    n = 100 if quick else env_int("JAXGEN_GUIDANCE_N", 2000)
    return n, gammas, name, int(steps), spacing, intervals


def run(*, quick: bool, out: Path | None = None) -> dict:
    del out  # a table, no figure
    n, gammas, sampler, steps, spacing, intervals = _settings(quick)
    where = os.environ.get("JAXGEN_GUIDANCE_MODEL", "cfg")
    found = load_diffusion_model(where)
    if found is None:
        raise BenchSettingError(f"JAXGEN_GUIDANCE_MODEL: expected a `jaxgen run` folder or one "
                                f"of {', '.join(pretrained.available())}, got {where!r}")
    model, where = found
    from jaxgen import evaluate

    ev = evaluate.load()
    labels = np.arange(n) % 10
    rows = []
    for interval in intervals:
        for gamma in gammas:
            kw = dict(gamma=gamma, guidance_interval=interval, sampler=sampler, steps=steps,
                      spacing=spacing)
            pipeline.generate(model, min(250, n), labels[:250], **kw, key=jax.random.key(0))
            t0 = time.perf_counter()  # after compiling: the sweep's later rows reuse it
            images = pipeline.generate(model, n, labels, **kw, key=jax.random.key(1))
            seconds = time.perf_counter() - t0
            q = judge(ev, images, labels)
            rows.append(dict(interval="none" if interval is None else f"({interval[0]:g}, "
                             f"{interval[1]:g}]", gamma=gamma, n=n, fid=q["fid"],
                             floor_fid=q["floor"]["fid"], precision=q["precision"],
                             recall=q["recall"], accuracy=q["label_accuracy"],
                             confidence=q["mean_confidence"], seconds=seconds))
    return {"machine": machine(), "model": str(where), "sampler": f"{sampler}-{steps}",
            "spacing": spacing or "the sampler's default",
            "rows": rows,
            "notes": ["interval: guidance where sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) "
                      "is in it, conditional sampling elsewhere; FID, precision and recall "
                      "against all 10,000 test digits, floor_fid: n random training digits; "
                      "accuracy: the evaluator's share of the asked digit; seconds: sampling n "
                      "after compiling"]}
