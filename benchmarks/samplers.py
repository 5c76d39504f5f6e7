"""Sample quality against sampler steps on one trained model: DDIM and DPM-Solver++(2M) at a
range of network evaluations (and DDPM ancestral at all T steps when asked), each judged with
`evaluate.judge_against_test` beside the real-data floor at the same n, with its wall time.

The model is `$JAXGEN_SAMPLER_MODEL`: a `jaxgen run` folder or a shipped model's name (default
`runs/ddpm` if `jaxgen run ddpm` has written it, else the shipped `ddpm`); `$JAXGEN_SAMPLER_N`
samples per row (default 1,000), `$JAXGEN_SAMPLER_DDPM=1` adds DDPM-1000,
`$JAXGEN_SAMPLER_NAMES` (comma-separated) keeps only the named samplers and
`$JAXGEN_SAMPLER_STEPS` (comma-separated) sets the network evaluations of every one of them,
`$JAXGEN_SAMPLER_SPACINGS` (comma-separated: uniform, logsnr, karras) the time grids each is
run on (default: each sampler's own, uniform for DDIM and logsnr for the solvers).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import jax
import numpy as np

from jaxgen import evaluate
from jaxgen.benchmarks.common import BenchSettingError, env_int, load_diffusion_model, machine
from jaxgen.diffusion import ddpm, pipeline, pretrained
from jaxgen.io import figure, save_figure

FULL = {"ddim": (10, 20, 50), "dpm++": (5, 10, 20), "dpm++sde": (10, 20, 50)}
QUICK = {"ddim": (10,), "dpm++": (10,), "dpm++sde": (10,)}


def run(*, quick: bool, out: Path | None = None) -> dict:
    n = 200 if quick else env_int("JAXGEN_SAMPLER_N", 1000)
    grid = dict(QUICK if quick else FULL)
    only = [s for s in os.environ.get("JAXGEN_SAMPLER_NAMES", "").split(",") if s]
    unknown = [s for s in only if s not in FULL]
    if unknown:
        raise BenchSettingError(f"JAXGEN_SAMPLER_NAMES: expected names from "
                                f"{', '.join(FULL)}, got {', '.join(unknown)}")
    where = os.environ.get("JAXGEN_SAMPLER_MODEL") or (
        "runs/ddpm" if Path("runs/ddpm/model.json").is_file() else "ddpm")
    found = load_diffusion_model(where)
    if found is None:
        return {"machine": machine(), "rows": [],
                "notes": [f"no model at {where}: set JAXGEN_SAMPLER_MODEL to a `jaxgen run` "
                          f"folder or one of {', '.join(pretrained.available())}"]}
    model, where = found
    if only:  # e.g. JAXGEN_SAMPLER_NAMES=dpm++sde: just those samplers' rows
        grid = {s: steps for s, steps in grid.items() if s in only}
    text = os.environ.get("JAXGEN_SAMPLER_STEPS", "").strip()
    if text:  # e.g. JAXGEN_SAMPLER_STEPS=15,20,30: these evaluations for every sampler
        parts = text.split(",")
        if not all(p.strip().isdigit() and 1 <= int(p) <= model.T for p in parts):
            raise BenchSettingError(f"JAXGEN_SAMPLER_STEPS: expected comma-separated ints in "
                                    f"1..{model.T}, got {text!r}")
        grid = {s: tuple(int(p) for p in parts) for s in grid}
    spacings = [s for s in os.environ.get("JAXGEN_SAMPLER_SPACINGS", "").split(",") if s]
    if any(s not in ddpm.SPACINGS for s in spacings):
        raise BenchSettingError(f"JAXGEN_SAMPLER_SPACINGS: expected names from "
                                f"{', '.join(ddpm.SPACINGS)}, got {','.join(spacings)!r}")
    if os.environ.get("JAXGEN_SAMPLER_DDPM") == "1":
        grid["ddpm"] = (model.T,)
    ev = evaluate.load()
    rows = []
    labels = None if model.num_classes is None else np.arange(n) % model.num_classes
    runs = [(sampler, spacing, steps) for sampler, steps_list in grid.items()
            for spacing in ([None] if sampler == "ddpm" else spacings or [None])
            for steps in steps_list]
    for sampler, spacing, steps in runs:
        b = min(250, n)  # one batch of the timed shape: compiled outside the timing
        if sampler != "ddpm":  # its warm-up would cost minutes; its compile is seconds
            pipeline.generate(model, b, None if labels is None else labels[:b],
                              sampler=sampler, steps=steps, batch_size=b, spacing=spacing,
                              key=jax.random.key(0))
        t0 = time.perf_counter()
        images = pipeline.generate(model, n, labels, sampler=sampler, steps=steps,
                                   batch_size=min(250, n), spacing=spacing,
                                   key=jax.random.key(1))
        seconds = time.perf_counter() - t0
        q = evaluate.judge_against_test(ev, images)
        rows.append(dict(sampler=sampler, spacing=spacing or "default", evaluations=steps, n=n,
                         fid=q["fid"], floor_fid=q["floor"]["fid"], precision=q["precision"],
                         recall=q["recall"], seconds=seconds))
    if out is not None and rows:
        fig, ax = figure()
        for sampler, spacing in dict.fromkeys((r["sampler"], r["spacing"]) for r in rows):
            r = [row for row in rows if (row["sampler"], row["spacing"]) == (sampler, spacing)]
            label = sampler if spacing == "default" else f"{sampler}, {spacing} grid"
            ax.plot([x["evaluations"] for x in r], [x["fid"] for x in r], "o-", label=label)
        ax.axhline(rows[0]["floor_fid"], color="grey", ls="--", label=f"real data, n = {n}")
        ax.set(xscale="log", yscale="log", xlabel="network evaluations per sample",
               ylabel="MNIST-FID vs all test digits", title=f"samplers on {where}")
        ax.legend()
        save_figure(fig, out / "samplers.png")
    return {"machine": machine(), "model": str(where), "rows": rows,
            "notes": ["FID, precision and recall against all 10,000 test digits; floor_fid: "
                      "n random training digits; seconds: sampling n images after compiling "
                      "(DDPM's include its compilation, a few seconds)"]}
