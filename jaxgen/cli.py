"""The `jaxgen` command: list and run experiments, run benchmarks.

    jaxgen list
    jaxgen run NAME [--preset P | --quick] [--set KEY=VALUE ...] [--seed N] [--seeds K]
                    [--out DIR] [--resume] [--devices N|all] [--distributed]
    jaxgen run all [--preset P] [--train] [--out DIR] [--seed N] [--resume] [--devices N|all]
    jaxgen config NAME [--preset P | --quick] [--set KEY=VALUE ...]
    jaxgen bench [NAME] [--quick] [--out DIR]
    jaxgen sample CHECKPOINT|SHIPPED [--label L] [--guidance G] [--guidance-interval LO,HI]
                  [--n N] [--steps S] [--sampler ddim|ddpm|dpm++|dpm++sde]
                  [--spacing uniform|logsnr|karras] [--seed N]
                  [--out grid.png]

A user mistake (unknown name, bad flag, unusable path) prints one line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import importlib
import inspect
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from jaxgen import config as config_lib
from jaxgen.benchmarks import BENCHMARKS
from jaxgen.benchmarks.common import BenchSettingError
from jaxgen.experiments import EXPERIMENTS
from jaxgen.train import CheckpointError, TrainingDiverged

# jaxgen.diffusion.pipeline.SAMPLERS, without importing it
SAMPLERS = ("ddim", "ddpm", "dpm++", "dpm++sde")
SPACINGS = ("uniform", "logsnr", "karras")  # jaxgen.diffusion.ddpm.SPACINGS, likewise


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever `sys.stderr` is when a record is emitted, so a
    redirected or captured stderr that has since been closed is never written to."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("jaxgen: %(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):  # StreamHandler.__init__ assigns one; the property decides
        pass


class UsageError(Exception):
    """A mistake in how jaxgen was called; reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message; we want one line
        raise UsageError(f"{message} (see `{self.prog} --help`)")


MAX_SEED = 2**32 - 1
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _seed(text: str) -> int:
    """argparse type of --seed: an integer in 0..2^32 - 1."""
    if text.strip().isascii() and text.strip().lstrip("-").isdecimal():
        value = int(text)
        if 0 <= value <= MAX_SEED:
            return value
    raise argparse.ArgumentTypeError(f"must be an integer in 0..{MAX_SEED}, got {text!r}")


def _interval(text: str) -> tuple[float, float]:
    """argparse type of --guidance-interval: 'lo,hi', two noise levels 0 <= lo < hi."""
    from jaxgen.diffusion.pipeline import check_interval

    parts = text.split(",")
    try:
        interval = tuple(float(v) for v in parts)
        if len(interval) != 2:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two noise levels, e.g. 0.3,5), got "
                                         f"{text!r}") from None
    try:
        check_interval(interval)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("guidance_interval ")) from None
    return interval


def _path(text: str) -> Path:
    """argparse type of --out: a non-empty path."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return Path(text)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="jaxgen", description="Generative models from first principles, in JAX.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list the experiments and benchmarks")
    r = sub.add_parser("run", help="run an experiment (or 'all', by default each in its quick "
                                    "form)")
    r.add_argument("name", help="experiment name from `jaxgen list`, or 'all'")
    _config_arguments(r)
    r.add_argument("--out", type=_path, help="output directory (default runs/NAME)")
    r.add_argument("--seed", type=_seed, help="seed for jax.random (same as --set seed=N)")
    r.add_argument("--seeds", type=int, metavar="K",
                   help="train K seeds (--seed, --seed + 1, ...) as one vmapped program and "
                        "report mean ± std (--set seeds=K; vae, hvae, classifier, nn)")
    r.add_argument("--resume", action="store_true",
                   help="continue training from the latest checkpoint under --out")
    r.add_argument("--train", action="store_true",
                   help="run all: train the diffusion models too (by default the quick run "
                        "samples and judges the models shipped with jaxgen)")
    r.add_argument("--devices", default="1",
                   help="train data-parallel on N devices, or 'all' (default 1)")
    r.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize() first (multi-host; see README)")
    c = sub.add_parser("config", help="print an experiment's resolved config")
    c.add_argument("name", help="experiment name from `jaxgen list`")
    _config_arguments(c)
    b = sub.add_parser("bench", help="run a benchmark (default: all) and print a table")
    b.add_argument("name", nargs="?", default="all", help="benchmark name or 'all'")
    b.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    b.add_argument("--out", type=_path, default=Path("runs/bench"),
                   help="directory for the JSON results (default runs/bench)")
    s = sub.add_parser("sample", help="sample a grid from a trained diffusion model")
    s.add_argument("checkpoint", type=Path,
                   help="a `jaxgen run` output folder holding model.json (ddpm, conditional, "
                        "cfg, classifier-guidance, latent-diffusion), or the name of a model "
                        "shipped with jaxgen (`jaxgen list` shows them)")
    s.add_argument("--label", type=int, help="the digit to ask for (conditional models; "
                   "default: every digit in turn)")
    s.add_argument("--guidance", type=float, default=1.0,
                   help="classifier-free guidance scale gamma >= 0 (default 1: conditional)")
    s.add_argument("--guidance-interval", type=_interval, metavar="LO,HI",
                   help="guide only where the noise level sigma_t = sqrt((1 - alpha_bar_t) / "
                        "alpha_bar_t) is in (LO, HI], conditionally elsewhere (Kynkaanniemi "
                        "et al. 2024; default: every step)")
    s.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    s.add_argument("--steps", type=int, default=50,
                   help="network evaluations for ddim, dpm++ and dpm++sde (default 50)")
    s.add_argument("--sampler", choices=SAMPLERS, default="ddim",
                   help="ddim (--steps steps), ddpm (ancestral, all T steps), dpm++ "
                        "(DPM-Solver++(2M) of the ODE, --steps steps; 10-20 suffice) or "
                        "dpm++sde (of the SDE: stochastic, 20-50 steps)")
    s.add_argument("--spacing", choices=SPACINGS, default=None,
                   help="the time grid of ddim, dpm++ and dpm++sde: uniform in t, logsnr "
                        "(even in log-SNR) or karras (the EDM grid, Karras et al. 2022; "
                        "default: uniform for ddim, logsnr for dpm++ and dpm++sde)")
    s.add_argument("--seed", type=_seed, default=0, help="seed for jax.random (default 0)")
    s.add_argument("--out", type=_path, default=Path("samples.png"),
                   help="PNG to write (default samples.png)")
    return p


def _config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", help="a named config of the experiment: full (the book, the "
                   "default) or quick (CPU minutes)")
    p.add_argument("--quick", action="store_true", help="the same as --preset quick")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="change one config field (repeatable; tuples as 32,64,128); "
                        "`jaxgen config NAME` lists the fields")


def _module(name: str):
    return importlib.import_module(f"jaxgen.experiments.{EXPERIMENTS[name][0]}")


def resolve_config(name: str, preset: str | None = None, overrides=(), seed: int | None = None):
    """(preset name, config) of experiment `name`: the preset (default 'full') with `overrides`
    ('key=value' strings) and `seed` applied; a bad preset, key or value is a UsageError."""
    presets = _module(name).PRESETS
    preset = preset or "full"
    if preset not in presets:
        raise UsageError(f"--preset {preset!r}: experiment {name!r} has presets "
                         f"{', '.join(presets)}")
    try:
        cfg = config_lib.override(presets[preset], list(overrides))
    except config_lib.ConfigError as e:
        raise UsageError(str(e)) from e
    if seed is not None:
        try:
            cfg = dataclasses.replace(cfg, seed=seed)
        except config_lib.ConfigError as e:  # a field check that depends on the seed
            raise UsageError(str(e)) from e
    if not 0 <= cfg.seed <= MAX_SEED:
        raise UsageError(f"--set seed: expected an int in 0..{MAX_SEED}, got {cfg.seed}")
    return preset, cfg


def _preset(args, default: str | None = None) -> str | None:
    if args.quick and args.preset not in (None, "quick"):
        raise UsageError(f"--quick and --preset {args.preset} disagree; give one")
    return "quick" if args.quick else (args.preset or default)


def _cmd_config(args) -> None:
    _pick(args.name, EXPERIMENTS, "experiment")
    preset, cfg = resolve_config(args.name, _preset(args), args.overrides)
    print(f"# jaxgen run {args.name} --preset {preset}")
    print(json.dumps(config_lib.as_dict(cfg), indent=2))


def _cmd_sample(args) -> None:
    import math

    import jax
    import numpy as np

    from jaxgen.diffusion import pipeline
    from jaxgen.experiments._common import image_grid
    from jaxgen.io import figure, save_figure

    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    if args.out.suffix.lower() != ".png":
        raise UsageError(f"--out must be a .png file, got {args.out}")
    _out_dir(args.out.parent)  # a file in the way or a read-only folder: said before sampling
    try:
        model = _load_model(args.checkpoint)
        labels = None
        if model.num_classes is not None:
            labels = (np.full(args.n, args.label) if args.label is not None
                      else np.arange(args.n) % model.num_classes)
        elif args.label is not None:
            labels = np.full(args.n, args.label)  # rejected below, with the reason
        pipeline.check_request(model, labels, args.guidance, args.guidance_interval)
        pipeline.check_spacing(args.sampler, args.spacing)
        if not 1 <= args.steps <= model.T:
            raise ValueError(f"steps must be in 1..{model.T}, got {args.steps}")
    except ValueError as e:  # messages start with the argument they are about
        msg = str(e).replace("guidance_interval", "guidance-interval", 1)
        flag = msg.split()[0].rstrip(":")
        raise UsageError(f"--{msg}" if flag in ("label", "guidance", "guidance-interval",
                                                "steps", "spacing") else msg) from e
    images = pipeline.generate(model, args.n, labels, gamma=args.guidance, sampler=args.sampler,
                               steps=args.steps, guidance_interval=args.guidance_interval,
                               spacing=args.spacing,
                               key=jax.random.key(args.seed))
    rows = math.ceil(math.sqrt(args.n))
    fig, ax = figure(size=(6, 6))
    what = "unconditional" if labels is None else (
        f"label {args.label}" if args.label is not None else "labels 0-9")
    where = ("" if args.guidance_interval is None else
             " for sigma in ({:g}, {:g}]".format(*args.guidance_interval))
    image_grid(ax, images, rows, f"{what}, guidance {args.guidance:g}{where}, {args.sampler}"
                                 f"{'' if args.sampler == 'ddpm' else f'-{args.steps}'}")
    save_figure(fig, args.out)
    print(f"{args.n} samples -> {args.out}")


def _load_model(checkpoint: Path):
    """A run folder, or else the shipped model of that name."""
    from jaxgen.diffusion import pipeline, pretrained

    name = str(checkpoint)
    if not checkpoint.exists() and name in pretrained.available():
        logging.getLogger("jaxgen").info("%s: the model shipped with jaxgen (%s)", name,
                                         pretrained.about(name)["command"])
        return pretrained.load(name)[0]
    if not checkpoint.exists():
        raise UsageError(f"checkpoint {name!r}: no such folder, and not a shipped model "
                         f"({', '.join(pretrained.available()) or 'none installed'})")
    return pipeline.load(checkpoint)


def _out_dir(path: Path) -> Path:
    """`path` as a writable directory (created if missing), or one UsageError line saying why
    not, before any work is done."""
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"--out {path}: {parent} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {path}: cannot create directory ({e.strerror})") from e
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"--out {path}: directory is not writable")
    return path


def _pick(name: str, registry: dict, kind: str) -> list[str]:
    if name == "all":
        return list(registry)
    if name not in registry:
        raise UsageError(f"unknown {kind} {name!r}; choose from: all, {', '.join(registry)}")
    return [name]


def run_experiment(name: str, out: Path, config, *, preset: str, resume: bool = False) -> dict:
    """Run one experiment from its resolved `config`: write `out/config.json` first, then the
    figures and `out/metrics.json` (metrics, config, versions, devices, CPU, wall time).

    With `resume`, a `config.json` already in `out` must equal `config` (UsageError naming the
    keys that differ): checkpoints of one configuration never continue as another."""
    out = _out_dir(out)
    with _run_lock(out):
        return _run_locked(name, out, config, preset=preset, resume=resume)


@contextlib.contextmanager
def _run_lock(out: Path):
    """Hold `out/.jaxgen.lock` (pid and host) while a run writes `out`: a second run into the
    same folder is a UsageError naming the holder; a lock left by a process that no longer
    runs on this host is taken over."""
    lock = out / ".jaxgen.lock"
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text())
            except (OSError, ValueError):
                holder = {}
            if _alive(holder):
                raise UsageError(f"--out {out} is being written by another jaxgen run (pid "
                                 f"{holder['pid']} on {holder['host']}); wait for it or choose "
                                 f"another --out") from None
            logging.getLogger("jaxgen").info("%s: taking over a stale lock (pid %s)", out,
                                             holder.get("pid"))
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _alive(holder: dict) -> bool:
    """Whether the lock's process still runs (only knowable on the same host)."""
    if not isinstance(holder.get("pid"), int):
        return False
    if holder.get("host") != socket.gethostname():
        return True  # another machine's run: assume it is alive
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_locked(name: str, out: Path, config, *, preset: str, resume: bool) -> dict:
    from jaxgen.io import write_json
    from jaxgen.provenance import environment

    settings = config_lib.as_dict(config)
    saved_path = out / "config.json"
    if resume and saved_path.exists():
        saved = json.loads(saved_path.read_text())
        differ = config_lib.differences(saved.get("config", {}), settings)
        if saved.get("experiment", name) != name:
            raise UsageError(f"--resume: {out} holds a run of {saved.get('experiment')!r}, "
                             f"not {name!r}")
        if differ:
            raise UsageError(f"--resume: the config differs from the one saved in {saved_path} "
                             f"in: {', '.join(differ)}")
    write_json(saved_path, {"experiment": name, "preset": preset, "config": settings})
    start = time.perf_counter()
    metrics = _module(name).train_and_evaluate(config, out, resume=resume)
    metrics = {"experiment": name, "preset": preset, "seed": config.seed,
               "quick": preset == "quick", "seconds": round(time.perf_counter() - start, 2),
               **metrics, "config": settings, "environment": environment()}
    write_json(out / "metrics.json", metrics)
    return metrics


def _cmd_list() -> None:
    from jaxgen.diffusion import pretrained

    width = max(map(len, [*EXPERIMENTS, *BENCHMARKS]))
    print("experiments (jaxgen run NAME):")
    for name, (_, desc) in EXPERIMENTS.items():
        print(f"  {name:<{width}}  {desc}")
    print("benchmarks (jaxgen bench NAME):")
    for name, (_, desc) in BENCHMARKS.items():
        print(f"  {name:<{width}}  {desc}")
    print("shipped diffusion models (jaxgen sample NAME; made by `jaxgen run NAME --quick`):")
    for name in pretrained.available():
        print(f"  {name:<{width}}  {pretrained.NAMES[name]}")


def _cmd_run(args) -> None:
    import jax

    from jaxgen import parallel

    if args.distributed:
        jax.distributed.initialize()  # coordinator, process count and id from the environment
    if args.devices == "all":
        devices = jax.device_count()
    elif (args.devices.isascii() and args.devices.isdecimal()
          and 1 <= int(args.devices) <= jax.device_count()):
        devices = int(args.devices)
    else:
        raise UsageError(f"--devices must be 'all' or an int in 1..{jax.device_count()} (the "
                         f"devices JAX sees), got {args.devices!r}")
    with parallel.use_devices(devices):
        _run_experiments(args)


def _run_experiments(args) -> None:
    from tqdm import tqdm

    names = _pick(args.name, EXPERIMENTS, "experiment")
    if args.seeds is not None:
        if len(names) != 1:
            raise UsageError("--seeds applies to one experiment")
        fields = {f.name for f in dataclasses.fields(_module(names[0]).Config)}
        if "seeds" not in fields:
            raise UsageError(f"--seeds: experiment {names[0]!r} does not train seed replicas")
        args.overrides = [*args.overrides, f"seeds={args.seeds}"]
    if len(names) == 1:
        if args.train:
            raise UsageError("--train applies to `run all`; one experiment always trains "
                             "(--set pretrained=true loads its shipped model instead)")
        out = args.out or Path("runs") / names[0]
        preset, cfg = resolve_config(names[0], _preset(args), args.overrides, args.seed)
        metrics = run_experiment(names[0], out, cfg, preset=preset, resume=args.resume)
        print(f"{names[0]}: done in {metrics['seconds']} s; figures and metrics.json in {out}/")
        return
    if args.overrides:
        raise UsageError("--set applies to one experiment; run them one by one to change "
                         "settings")
    preset = _preset(args, default="quick")
    configs = {}
    for name in names:
        shipped = _shipped(name, preset, args.train)
        try:
            configs[name] = resolve_config(name, preset, shipped, seed=args.seed)[1]
        except UsageError as e:
            if not shipped:
                raise
            raise UsageError(f"{name}: {e} (`run all --train` trains the diffusion models "
                             f"instead of loading the shipped ones)") from e
    root = args.out or Path("runs")
    summary = []
    for name in (bar := tqdm(names, desc="experiments", unit="exp")):
        bar.set_postfix_str(name)
        m = run_experiment(name, root / name, configs[name], preset=preset, resume=args.resume)
        summary.append({"experiment": name, "model": "shipped" if m.get("pretrained") else "",
                        "seconds": m["seconds"], "headline": m.get("headline", "")})
    table = format_table(summary)
    total = sum(r["seconds"] for r in summary)
    _write_text(root / "summary.txt", f"{table}\n\n{len(summary)} experiments, {total:.0f} s "
                                      f"(preset {preset})\n")
    print(f"\n{table}\n\n{len(summary)} experiments in {total:.0f} s; figures and "
          f"metrics.json under {root}/<experiment>/, this table in {root}/summary.txt")


def _shipped(name: str, preset: str, train: bool) -> list[str]:
    """`run all`'s override for experiment `name`: its quick diffusion model is loaded from the
    ones jaxgen ships (`pretrained=true`) unless --train, or another preset, is asked for."""
    from jaxgen.diffusion import pretrained

    model = getattr(_module(name).Config, "shipped_model", None)
    ship = preset == "quick" and not train and model in pretrained.available()
    return ["pretrained=true"] if ship else []


def _write_text(path: Path, text: str) -> None:
    from jaxgen.io import _atomic_write

    _atomic_write(path, lambda f: f.write(text.encode()))


def format_table(rows: list[dict]) -> str:
    """Rows of dicts as an aligned plain-text table (the union of their keys as columns)."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    cell = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    table = [[cell(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)) for t in table]
    return "\n".join(lines)


def _cmd_bench(args) -> None:
    from jaxgen.io import write_json

    names = _pick(args.name, BENCHMARKS, "benchmark")  # before anything is created
    out = _out_dir(args.out)
    for name in names:
        module = importlib.import_module(f"jaxgen.benchmarks.{BENCHMARKS[name][0]}")
        takes_out = "out" in inspect.signature(module.run).parameters  # benchmarks with plots
        try:
            result = module.run(quick=args.quick, **({"out": out} if takes_out else {}))
        except BenchSettingError as e:
            raise UsageError(str(e)) from e
        result = {"benchmark": name, "quick": args.quick, **result}
        path = write_json(out / f"{name}{'-quick' if args.quick else ''}.json", result)
        print(f"\n== {name} ({'quick' if args.quick else 'full'}) ==")
        print(format_table(result["rows"]))
        for line in result.get("notes", []):
            print(f"note: {line}")
        print(f"results: {path}")


def main(argv: list[str] | None = None) -> int:
    logger = logging.getLogger("jaxgen")  # our own notes only, not every library's INFO
    if not logger.handlers:
        logger.addHandler(_StderrHandler())
        logger.setLevel(logging.INFO)
        logger.propagate = False  # absl may have configured the root logger too
    try:
        args = _parser().parse_args(argv)
        commands = {"list": lambda a: _cmd_list(), "run": _cmd_run, "bench": _cmd_bench,
                    "sample": _cmd_sample, "config": _cmd_config}
        commands[args.command](args)
    except UsageError as e:
        print(f"jaxgen: error: {e}", file=sys.stderr)
        return 2
    except (TrainingDiverged, CheckpointError) as e:
        print(f"jaxgen: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if e.errno not in DISK_ERRORS:
            raise
        # a full disk, a read-only or forbidden path: one line; writes are atomic, so nothing
        # half-written is left behind
        where = e.filename or "an output file"
        print(f"jaxgen: error: {where}: {e.strerror or os.strerror(e.errno)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("jaxgen: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
