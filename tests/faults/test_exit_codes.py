"""Exit codes scripts can trust: a sweep exits non-zero unless every cell finished ``ok``
and its last line counts the statuses; out-of-memory is ``oom`` whatever the allocator says."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import SMALL_QA, composed_config
from helpers.backends import OutOfHostMemory
from helpers.records import record

import xbench
from xbench.api.backend import BackendSpec
from xbench.leaderboard.sweep_callback import (
    cell_statuses,
    note_user_error,
    status_line,
    sweep_exit_code,
)
from xbench.records.result import RunResult
from xbench.registry import load_registry
from xbench.run.plan import plan_run
from xbench.run.runner import execute

TESTS = Path(__file__).resolve().parents[1]

# A third-party distribution (found through its entry point) whose backends are the test
# helpers' failing ones, so that a subprocess sweep can run them.
FAILING_PLUGIN = """
from dataclasses import dataclass

import xbench
from xbench.api.backend import BackendSpec
from helpers.backends import Broken, OutOfHostMemory


@dataclass
class NoOptions:
    pass


@xbench.hookimpl
def xbench_register_backends(register):
    for name, cls in (("broken", Broken), ("host_oom", OutOfHostMemory)):
        register(
            BackendSpec(
                name=name, build=lambda o, c=cls: c(), options=NoOptions, exact=False,
                description="fails on purpose",
            )
        )
"""


def with_failing_plugin(site: Path) -> dict[str, str]:
    info = site / "xbench_fails-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: xbench-fails\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[xbench]\nfails = xbench_fails\n")
    (site / "xbench_fails.py").write_text(textwrap.dedent(FAILING_PLUGIN))
    path = [str(site), str(TESTS), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}


@pytest.mark.slow
def test_a_sweep_with_failing_cells_exits_1_and_counts_them(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "xbench.cli", "run", "-m", "backend=naive,broken,host_oom"]
        + ["trainer=debug", "logger=none", "threads=1", "measure.repeats=2", *SMALL_QA],
        capture_output=True,
        text=True,
        timeout=600,
        env=with_failing_plugin(tmp_path / "site"),
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert done.stdout.strip().splitlines()[-1] == "sweep: 3 cells — 1 ok, 1 failed, 1 oom"
    records = map(RunResult.load, (tmp_path / "runs" / "multirun").glob("*/*/result.json"))
    statuses = {r.backend.name: r.status for r in records}
    assert statuses == {"naive": "ok", "broken": "failed", "host_oom": "oom"}


@dataclass
class _NoOptions:
    pass


class _HostOutOfMemoryBackend:
    @xbench.hookimpl
    def xbench_register_backends(self, register):
        spec = BackendSpec(
            name="host_oom",
            build=lambda o: OutOfHostMemory(),
            options=_NoOptions,
            exact=False,
            description="the CPU allocator refuses",
        )
        register(spec)


def test_cpu_allocator_refusal_during_training_is_recorded_oom(tmp_path):
    registry = load_registry(extra_plugins=[("host_oom", _HostOutOfMemoryBackend())])
    config = composed_config(["trainer=debug", "logger=none", *SMALL_QA], registry)
    config["backend"] = {"name": "host_oom"}
    result = execute(plan_run(config, registry), tmp_path)
    assert result.status == "oom" and "can't allocate memory" in result.error
    assert RunResult.load(tmp_path / "result.json").status == "oom"


def _cell(sweep: Path, name: str, status: str | None) -> Path:
    cell = sweep / name
    (cell / ".hydra").mkdir(parents=True)
    if status:
        record(backend=name, status=status).write(cell)
    return cell


def test_cells_are_counted_from_their_folders(tmp_path):
    _cell(tmp_path, "0_naive_qa_seed0", "ok")
    _cell(tmp_path, "1_flash_qa_seed0", "ok")
    _cell(tmp_path, "2_sparse_qa_seed0", "diverged")
    _cell(tmp_path, "3_linear_qa_seed0", None)  # died, or its record could not be written
    (tmp_path / ".submitit").mkdir()  # a launcher's folder is no cell
    counts = cell_statuses(tmp_path)
    assert status_line(counts) == "sweep: 4 cells — 2 ok, 1 diverged, 1 no record"
    assert sweep_exit_code(counts) == 1
    note_user_error(_cell(tmp_path, "4_uniform_qa_seed0", None), "task.batch_size=0 ...")
    assert sweep_exit_code(cell_statuses(tmp_path)) == 2, "a user error is exit 2"


def test_only_a_sweep_of_ok_cells_exits_0(tmp_path):
    _cell(tmp_path, "0_naive_qa_seed0", "ok")
    assert status_line(cell_statuses(tmp_path)) == "sweep: 1 cell — 1 ok"
    assert sweep_exit_code(cell_statuses(tmp_path)) == 0
