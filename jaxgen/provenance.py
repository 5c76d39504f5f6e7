"""What a run records about where it ran: versions, git revision, devices, CPU."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("jaxgen", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")


def git_revision() -> str | None:
    """The commit of the jaxgen source tree (with '+dirty' when it has changes), or None when
    jaxgen is not run from a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev.stdout.strip() + ("+dirty" if dirty else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    """Versions of jaxgen and its stack, the git revision, device kind and count, CPU model."""
    import jax

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    devices = jax.devices()
    return {"versions": versions, "python": platform.python_version(),
            "git_revision": git_revision(), "backend": jax.default_backend(),
            "device_kind": devices[0].device_kind, "device_count": len(devices),
            "cpu": cpu_model()}
