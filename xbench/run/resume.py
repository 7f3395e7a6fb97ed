"""Resume: a cell that already has an ``ok`` record made from the same config, xbench
version, code and inputs is not run again; its record is copied into the new cell's
directory, with its per-example sidecar, so the new sweep's leaderboard still shows it
(same run id, counted once) and pairs it with the other rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xbench import __version__
from xbench.atomic import write_atomic
from xbench.records.result import RunResult, config_hash
from xbench.records.store import find_results
from xbench.run.plan import RunPlan


def wants_resume(config: dict[str, Any], sweep_cell: bool) -> bool:
    """``resume=auto`` resumes sweep cells only; ``true``/``false`` decide for every run."""
    setting = config.get("resume", "auto")
    return sweep_cell if setting == "auto" else bool(setting)


def finished_record(plan: RunPlan, search_root: Path) -> tuple[Path, RunResult] | None:
    """The newest ``ok`` record under ``search_root`` that this plan would reproduce.

    Reads only records and source files: nothing is built.
    """
    if not search_root.exists():
        return None
    wanted = (config_hash(plan.config), __version__, plan.revision)
    matches = [
        (path, record)
        for path, record in find_results([search_root])
        if record.status == "ok"
        and (record.config_hash, record.xbench_version, record.revision) == wanted
    ]
    return max(matches, key=lambda match: match[1].created, default=None)


def reuse(found: tuple[Path, RunResult], run_dir: Path) -> RunResult:
    """Copy the finished record and its sidecar into ``run_dir`` (atomically); returns it."""
    path, record = found
    if path.parent.resolve() != run_dir.resolve():
        sidecar = record.quality.examples_file
        if sidecar and (path.parent / sidecar).is_file():
            write_atomic(run_dir / sidecar, (path.parent / sidecar).read_bytes())
        record.write(run_dir)
    return record
