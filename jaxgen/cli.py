"""The `jaxgen` command: list and run experiments, run benchmarks.

    jaxgen list
    jaxgen run NAME [--out DIR] [--seed N] [--quick]
    jaxgen run all [--out DIR] [--seed N]
    jaxgen bench [NAME] [--quick] [--out DIR]

A user mistake (unknown name, bad flag, unusable path) prints one line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import sys
import time
from pathlib import Path

from jaxgen.benchmarks import BENCHMARKS
from jaxgen.experiments import EXPERIMENTS
from jaxgen.train import TrainingDiverged


class UsageError(Exception):
    """A mistake in how jaxgen was called; reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message; we want one line
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="jaxgen", description="Generative models from first principles, in JAX.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list the experiments and benchmarks")
    r = sub.add_parser("run", help="run an experiment (or 'all', each in its quick form)")
    r.add_argument("name", help="experiment name from `jaxgen list`, or 'all'")
    r.add_argument("--out", type=Path, help="output directory (default runs/NAME)")
    r.add_argument("--seed", type=int, default=0, help="seed for jax.random (default 0)")
    r.add_argument("--quick", action="store_true", help="a small configuration, CPU minutes")
    r.add_argument("--resume", action="store_true",
                   help="continue training from the latest checkpoint under --out")
    b = sub.add_parser("bench", help="run a benchmark (default: all) and print a table")
    b.add_argument("name", nargs="?", default="all", help="benchmark name or 'all'")
    b.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    b.add_argument("--out", type=Path, default=Path("runs/bench"),
                   help="directory for the JSON results (default runs/bench)")
    return p


def _out_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {path}: cannot create directory ({e.strerror})") from e
    return path


def _pick(name: str, registry: dict, kind: str) -> list[str]:
    if name == "all":
        return list(registry)
    if name not in registry:
        raise UsageError(f"unknown {kind} {name!r}; choose from: all, {', '.join(registry)}")
    return [name]


def run_experiment(name: str, out: Path, *, seed: int, quick: bool, resume: bool = False) -> dict:
    """Run one experiment, write `out/metrics.json`, return its metrics."""
    from jaxgen.io import write_json

    module = importlib.import_module(f"jaxgen.experiments.{EXPERIMENTS[name][0]}")
    kwargs = {}
    if resume:
        if "resume" not in inspect.signature(module.run).parameters:
            raise UsageError(f"experiment {name!r} trains nothing; --resume does not apply")
        kwargs["resume"] = True
    start = time.perf_counter()
    metrics = module.run(_out_dir(out), seed=seed, quick=quick, **kwargs)
    metrics = {"experiment": name, "seed": seed, "quick": quick,
               "seconds": round(time.perf_counter() - start, 2), **metrics}
    write_json(out / "metrics.json", metrics)
    return metrics


def _cmd_list() -> None:
    width = max(map(len, [*EXPERIMENTS, *BENCHMARKS]))
    print("experiments (jaxgen run NAME):")
    for name, (_, desc) in EXPERIMENTS.items():
        print(f"  {name:<{width}}  {desc}")
    print("benchmarks (jaxgen bench NAME):")
    for name, (_, desc) in BENCHMARKS.items():
        print(f"  {name:<{width}}  {desc}")


def _cmd_run(args) -> None:
    from tqdm import tqdm

    names = _pick(args.name, EXPERIMENTS, "experiment")
    if len(names) == 1:
        out = args.out or Path("runs") / names[0]
        metrics = run_experiment(names[0], out, seed=args.seed, quick=args.quick,
                                 resume=args.resume)
        print(f"{names[0]}: done in {metrics['seconds']} s; figures and metrics.json in {out}/")
        return
    root = args.out or Path("runs")
    summary = []
    for name in (bar := tqdm(names, desc="experiments", unit="exp")):
        bar.set_postfix_str(name)
        m = run_experiment(name, root / name, seed=args.seed, quick=True)
        summary.append((name, m["seconds"], m.get("headline", "")))
    print(f"\n{'experiment':<12} {'seconds':>8}  headline")
    for name, sec, headline in summary:
        print(f"{name:<12} {sec:>8.1f}  {headline}")
    print(f"\nfigures and metrics.json under {root}/<experiment>/")


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

    out = _out_dir(args.out)
    for name in _pick(args.name, BENCHMARKS, "benchmark"):
        module = importlib.import_module(f"jaxgen.benchmarks.{BENCHMARKS[name][0]}")
        result = module.run(quick=args.quick)
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
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("jaxgen: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # absl may have configured the root logger too
    try:
        args = _parser().parse_args(argv)
        {"list": lambda a: _cmd_list(), "run": _cmd_run, "bench": _cmd_bench}[args.command](args)
    except UsageError as e:
        print(f"jaxgen: error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"jaxgen: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("jaxgen: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
