"""The small diffusion models shipped with jaxgen, so that `jaxgen run all` and `jaxgen sample`
work minutes after `pip install` on a 2-core laptop.

Each was made by jaxgen's own `jaxgen run NAME --quick` and lives in
`jaxgen/data/files/models/NAME/`: `model.json` + `model.msgpack` (`pipeline.save`, floating
arrays stored as float16, loaded as float32) and `about.json` — the command, the experiment's
config and seed, the git revision and CPU it was trained on, its training history (loss and
seconds per epoch) and the metrics that run measured. `export` writes one from a run folder.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from jaxgen.diffusion import pipeline
from jaxgen.io import write_json

# experiment name -> what its model is
NAMES = {"ddpm": "unconditional", "conditional": "label-conditioned (no label dropout)",
         "cfg": "label-conditioned, label dropout 0.1 (classifier-free guidance)",
         "latent-diffusion": "CFG U-Net in an autoencoder's 8x8x2 latents (+ the autoencoder)"}


def directory(name: str) -> Path:
    """The folder of shipped model `name` (ValueError for names jaxgen ships none of)."""
    if name not in NAMES:
        raise ValueError(f"name must be one of {', '.join(NAMES)} (the shipped models), got "
                         f"{name!r}")
    return Path(str(resources.files("jaxgen.data") / "files" / "models" / name))


def available() -> tuple[str, ...]:
    """The names whose model files are installed."""
    return tuple(n for n in NAMES if (directory(n) / "model.json").is_file())


def about(name: str) -> dict:
    """How shipped model `name` was made (about.json)."""
    path = directory(name) / "about.json"
    if not path.is_file():
        raise ValueError(f"no shipped model {name!r} in this installation ({path} is missing)")
    return json.loads(path.read_text())


def load(name: str) -> tuple[pipeline.DiffusionModel, dict]:
    """(model, about) of shipped model `name`; the model's files are checked as `pipeline.load`
    checks any (SHA-256 of both files, names and shapes of the arrays)."""
    info = about(name)
    return pipeline.load(directory(name)), info


def export(run: str | Path, name: str, dest: str | Path | None = None) -> Path:
    """Write run folder `run` (the output of `jaxgen run NAME --quick`: model.json,
    model.msgpack, metrics.json, train/metrics.jsonl) as shipped model `name` into `dest`
    (default: the package's own folder for it), weights as float16."""
    run = Path(run)
    out = Path(dest) if dest is not None else directory(name)
    metrics = json.loads((run / "metrics.json").read_text())
    if metrics.get("experiment") != name:
        raise ValueError(f"run: {run} is a {metrics.get('experiment')!r} run, not {name!r}")
    def history(folder: str) -> list[dict]:  # per-epoch rows of `jaxgen.train`
        path = run / folder / "metrics.jsonl"
        lines = path.read_text().splitlines() if path.is_file() else []
        return [json.loads(line) for line in lines if line.strip()]

    env = metrics.get("environment", {})
    pipeline.save(out, pipeline.load(run), dtype="float16")
    info = {"name": name, "what": NAMES[name],
            "command": f"jaxgen run {name} --preset {metrics['preset']}",
            "preset": metrics["preset"], "seed": metrics["seed"], "config": metrics["config"],
            "git_revision": env.get("git_revision"), "cpu": env.get("cpu"),
            "versions": env.get("versions"), "seconds": metrics["seconds"],
            "seconds_per_step": metrics.get("seconds_per_step"), "history": history("train"),
            "autoencoder_history": history("autoencoder") or None,
            "train_size": metrics.get("train_size"), "headline": metrics.get("headline"),
            "stored_as": "float16 (the run sampled from float32 weights)"}
    write_json(out / "about.json", info)
    return out
