"""What each ingredient of the CPU recipe buys: `jaxgen run ddpm` trained from the book's
configuration, adding one ingredient a row until the row is the CPU recipe (`QUICK`), every row
with the same budget (`$JAXGEN_ABLATION_STEPS` steps of batch 32, default 500: that many x 32
distinct training digits, each seen once) and judged alike (DPM-Solver++(2M) at 20 steps,
`$JAXGEN_ABLATION_N` samples against all 10,000 test digits beside the real-data floor).

Each row is a run folder under `--out`/ablation; a row whose `metrics.json` holds the same
configuration is read back instead of retrained, so an interrupted study continues where it
stopped.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from jaxgen.benchmarks.common import env_int, machine
from jaxgen.diffusion import cost
from jaxgen.experiments._diffusion import QUICK, make_net


def _quick(*names: str) -> dict:
    """The CPU recipe's values of these config fields."""
    return {k: QUICK[k] for k in names}


# (label, the fields this row adds to the previous one); the book's `full` preset comes first
INGREDIENTS = [
    ("the book (U-Net 64-128-256, BatchNorm, eps, linear, [0, 1], no EMA, Adam 1e-3)", {}),
    ("+ pixels in [-1, 1]", _quick("data_range")),
    ("+ ResUNet 32x(1,2,2), attention at 7x7",
     _quick("arch", "base", "mults", "depth", "attention", "upsample")),
    ("+ v-prediction, min-SNR weighting, cosine schedule",
     _quick("prediction", "weighting", "schedule")),
    ("+ EMA 0.995 with warm-up", _quick("ema_decay", "ema_warmup")),
    ("+ Adam 2e-3, 100 warm-up steps, cosine decay (= the CPU recipe)",
     _quick("lr", "lr_warmup", "lr_schedule")),
]
RECIPE_FIELDS = {k for _, fields in INGREDIENTS for k in fields}


def configs(steps: int, n: int) -> list[tuple[str, object]]:
    """(label, ddpm Config) per row: the book's `full` preset with each row's ingredients and
    all before it, at `steps` steps of batch 32 and `n` samples judged with DPM-Solver++ 20."""
    from jaxgen.experiments.ddpm import PRESETS

    budget = dict(epochs=1, batch_size=32, train_size=32 * steps, n_samples=n,
                  samplers=("dpm++-20",), sampler="dpm++", steps=20)
    rows, fields = [], {}
    for label, added in INGREDIENTS:
        fields = {**fields, **added}
        rows.append((label, dataclasses.replace(PRESETS["full"], **fields, **budget)))
    return rows


def run(*, quick: bool, out: Path | None = None) -> dict:
    from jaxgen import config as config_lib
    from jaxgen.cli import run_experiment

    steps = 3 if quick else env_int("JAXGEN_ABLATION_STEPS", 500)
    n = 16 if quick else env_int("JAXGEN_ABLATION_N", 1000)
    root = (out or Path("runs/bench")) / ("ablation-quick" if quick else "ablation")
    rows = []
    for i, (label, cfg) in enumerate(configs(steps, n)):
        folder = root / f"row{i}"
        done = folder / "metrics.json"
        m = json.loads(done.read_text()) if done.is_file() else None
        if m is None or config_lib.differences(m.get("config", {}), config_lib.as_dict(cfg)):
            m = run_experiment("ddpm", folder, cfg, preset="ablation")
        rows.append(dict(row=i, ingredients=label, steps=m["steps"], params=m["unet_params"],
                         forward_gflop_per_image=cost.size(make_net(cfg))[1],
                         train_minutes=m["train_seconds"] / 60,
                         seconds_per_step=m["seconds_per_step"], n=n, fid=m["fid"],
                         floor_fid=m["fid_floor"], precision=m["precision"],
                         recall=m["recall"], confidence=m["mean_confidence"]))
    return {"machine": machine(), "rows": rows, "runs": str(root),
            "notes": [f"each row: {steps} steps of batch 32 ({32 * steps} training digits "
                      "once), DPM-Solver++(2M) 20 steps, n samples against all 10,000 test "
                      "digits; floor_fid: n random training digits"]}
