"""Where a figure was measured: stored with every run record."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch


def environment() -> dict[str, Any]:
    """Python, torch, CUDA, device and CPU facts of this process, as plain JSON (the
    fields of :class:`xbench.records.result.Environment`; ``xbench bench`` reports use it
    as it is)."""
    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "executable": sys.executable,
    }


#: How far the 1-minute load may exceed the usable cores before it counts as contention:
#: a run alone on the machine reads slightly above its threads (its data loader and main
#: thread, the average's lag), while one other busy process adds a whole core.
CONTENTION_MARGIN = 0.5


def is_contended(load_1m: float | None, cores: int | None) -> bool | None:
    """Other work competed for the cores: the load exceeds them by more than
    :data:`CONTENTION_MARGIN`; None when the load or the cores are unknown."""
    if load_1m is None or not cores:
        return None
    return load_1m > cores + CONTENTION_MARGIN


def machine_load() -> dict[str, Any]:
    """The machine's load now, as plain JSON (the fields of
    :class:`xbench.records.result.MachineLoad`): the 1-minute load average against the
    CPU cores this process may run on (its affinity where the OS tells, else every core)
    and torch's thread count, and whether other work contended for them
    (:func:`is_contended`)."""
    try:
        load: float | None = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on this OS, or not readable
        load = None
    try:
        cores: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count()
    return {
        "load_1m": load,
        "cores": cores,
        "threads": torch.get_num_threads(),
        "contended": is_contended(load, cores),
    }


def git_sha() -> str | None:
    """The commit of the xbench checkout, when it runs from one."""
    root = Path(__file__).resolve().parents[2]  # the checkout holding xbench/
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
