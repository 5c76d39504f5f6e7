"""Sample quality against training minutes: every kept checkpoint of the unconditional diffusion
runs named in `$JAXGEN_RECIPE_RUNS` (comma-separated `jaxgen run ddpm` folders, e.g. the book's
configuration and the CPU recipe), each sampled with DPM-Solver++(2M) at 20 steps from its EMA
(or raw) params, judged by `evaluate.judge_against_test` beside the real-data floor at the same
n, and plotted as FID against the minutes of training that produced it.

Minutes are the run's own recorded epoch seconds (`train/metrics.jsonl`), so the figure is only
as clean as those runs' cores were; `$JAXGEN_RECIPE_SECONDS_PER_STEP` (run=seconds, comma-
separated) replaces a run's recorded time by steps x a step time measured elsewhere, for a run
whose cores were shared.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import jax
import numpy as np

from jaxgen import evaluate
from jaxgen.benchmarks.common import env_int, machine
from jaxgen.diffusion import pipeline
from jaxgen.diffusion.training import sampling_variables
from jaxgen.io import figure, save_figure
from jaxgen.train import TrainState


def checkpoint_models(run: Path) -> list[tuple[int, pipeline.DiffusionModel]]:
    """(step, DiffusionModel) for each checkpoint kept under run/train/checkpoints, sampling
    as `train_diffusion` would have returned it at that step."""
    import orbax.checkpoint as ocp

    from jaxgen.experiments._diffusion import DiffusionConfig, make_net

    saved = json.loads((run / "config.json").read_text())["config"]
    fields = DiffusionConfig.__dataclass_fields__
    cfg = DiffusionConfig(**{k: tuple(v) if isinstance(v, list) else v
                             for k, v in saved.items() if k in fields})
    net = make_net(cfg)
    models = []
    with ocp.CheckpointManager((run / "train" / "checkpoints").absolute()) as manager:
        for step in sorted(manager.all_steps()):
            raw = manager.restore(step, args=ocp.args.StandardRestore())
            state = TrainState(np.asarray(raw["step"]), raw["params"], None,
                               raw.get("model_state"), raw.get("ema_params"))
            variables = sampling_variables(state, cfg.ema_decay, cfg.ema_warmup)
            models.append((step, pipeline.DiffusionModel(
                net, {"unet": variables}, (28, 28, 1), T=cfg.T, schedule=cfg.schedule,
                prediction=cfg.prediction, data_range=tuple(cfg.data_range))))
    return models


def training_minutes(run: Path, step: int, seconds_per_step: float | None) -> float:
    """Minutes of training up to `step`: steps x seconds_per_step when given, else the sum of
    the recorded epoch seconds up to that step."""
    if seconds_per_step is not None:
        return step * seconds_per_step / 60
    lines = (run / "train" / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return sum(r["seconds"] for r in rows if r["step"] <= step) / 60


def run(*, quick: bool, out: Path | None = None) -> dict:
    runs = [Path(p) for p in os.environ.get("JAXGEN_RECIPE_RUNS", "").split(",") if p]
    missing = [str(r) for r in runs if not (r / "train" / "checkpoints").is_dir()]
    if not runs or missing:
        return {"machine": machine(), "rows": [],
                "notes": ["set JAXGEN_RECIPE_RUNS to comma-separated `jaxgen run ddpm` folders "
                          "with checkpoints" + (f" (none under {', '.join(missing)})"
                                                if missing else "")]}
    step_time = dict(kv.split("=") for kv in
                     os.environ.get("JAXGEN_RECIPE_SECONDS_PER_STEP", "").split(",") if kv)
    ev = evaluate.load()
    n = 200 if quick else env_int("JAXGEN_RECIPE_N", 1000)
    rows = []
    for path in runs:
        per_step = step_time.get(str(path))
        for step, model in checkpoint_models(path):
            t0 = time.perf_counter()
            images = pipeline.generate(model, n, sampler="dpm++", steps=20,
                                       batch_size=min(250, n), key=jax.random.key(1))
            seconds = time.perf_counter() - t0
            q = evaluate.judge_against_test(ev, images)
            rows.append(dict(run=str(path), step=step,
                             minutes=training_minutes(path, step,
                                                      None if per_step is None
                                                      else float(per_step)),
                             n=n, fid=q["fid"], floor_fid=q["floor"]["fid"],
                             precision=q["precision"], recall=q["recall"],
                             sample_seconds=seconds))
    if out is not None and rows:
        fig, ax = figure()
        for path in runs:
            r = [row for row in rows if row["run"] == str(path)]
            ax.plot([x["minutes"] for x in r], [x["fid"] for x in r], "o-", label=path.name)
        ax.axhline(rows[0]["floor_fid"], color="grey", ls="--", label=f"real data, n = {n}")
        ax.set(yscale="log", xlabel="training minutes on this machine's cores",
               ylabel="MNIST-FID vs all test digits (DPM-Solver++ 20)",
               title="sample quality against training time")
        ax.legend()
        save_figure(fig, out / "recipes.png")
    return {"machine": machine(), "rows": rows,
            "notes": ["each checkpoint sampled with DPM-Solver++(2M) at 20 steps, n samples "
                      "against all 10,000 test digits; floor_fid: n random training digits"]}
