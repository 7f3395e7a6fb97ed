"""The ``xbench`` command as a user runs it: a subprocess, real Hydra, real wandb offline."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import SMALL_QA

from xbench.records.result import RunResult
from xbench.registry import get_registry


def xbench(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xbench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_unknown_backend_exits_2_with_the_installed_names():
    done = xbench("run", "backend=flsh", "task=qa")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "unknown backend 'flsh'" in lines[0]
    installed = ", ".join(sorted(get_registry().backends))
    assert f"installed backends: {installed}." in lines[0]
    assert "Did you mean 'flash'?" in lines[0]


def test_unknown_task_in_a_sweep_exits_2():
    done = xbench("run", "-m", "backend=naive,flash", "task=qa,nope")
    assert done.returncode == 2
    assert "unknown task 'nope'" in done.stderr and "Traceback" not in done.stderr


def test_invalid_option_value_names_the_field(tmp_path):
    done = xbench("run", "task.data.num_facts=-4", "logger=none")
    assert done.returncode == 2
    assert "task.data.num_facts=-4 is out of range" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list((tmp_path / "cache").glob("**/*.json")), "no data built before the check"


def test_plugins_lists_builtins_with_their_plugin():
    done = xbench("plugins")
    assert done.returncode == 0
    for name in ("naive", "flash", "uniform", "qa"):
        assert f"│ {name} " in done.stdout


def test_plugins_verbose_lists_options():
    done = xbench("plugins", "-v")
    assert "backend.kernel='auto'" in done.stdout
    assert "task.data.num_facts=8" in done.stdout


@pytest.mark.slow
def test_run_writes_a_record_and_an_offline_wandb_run(tmp_path):
    done = xbench("run", "backend=flash", "task=qa", "trainer=debug", *SMALL_QA)
    assert done.returncode == 0, done.stderr[-3000:]
    records = list((tmp_path / "runs").glob("*/*/result.json"))
    assert len(records) == 1
    result = RunResult.load(records[0])
    assert result.status == "ok" and result.backend.describe["kernel"] == "flash"
    offline = list(records[0].parent.glob("wandb/offline-run-*/run-*.wandb"))
    assert offline, "an offline wandb run is in the run directory"
    assert "xbench results" in done.stdout and "result.json" in done.stdout


@pytest.mark.slow
def test_multirun_runs_every_cell(tmp_path):
    done = xbench("run", "-m", "backend=naive,uniform", "trainer=debug", "logger=none", *SMALL_QA)
    assert done.returncode == 0, done.stderr[-3000:]
    records = sorted((tmp_path / "runs" / "multirun").glob("*/*/result.json"))
    backends = sorted(json.loads(r.read_text())["backend"]["name"] for r in records)
    assert backends == ["naive", "uniform"]


@pytest.mark.slow
def test_ddp_relaunch_keeps_the_subcommand(tmp_path):
    """Lightning re-runs sys.argv for rank 1; it must land in `xbench run` again."""
    done = xbench(
        "run",
        "backend=naive",
        "trainer=debug",
        "logger=none",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        *SMALL_QA,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = list((tmp_path / "runs").glob("*/*/result.json"))
    assert len(records) == 1 and RunResult.load(records[0]).status == "ok"
