"""Run and sweep folders never collide: runs and sweeps started at the same moment, in
separate processes, into one output root keep every record; every cell of one sweep (in
this process or in launcher workers) shares that sweep's folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SMALL_QA
from hydra import compose, initialize_config_module

from xbench.config.compose import CONFIG_NAME, store_plugin_configs, unique_stamp
from xbench.records.result import RunResult
from xbench.registry import get_registry

QUICK = ["trainer=debug", "logger=none", "threads=1", "measure.repeats=2", *SMALL_QA]
SWEEP = ["run", "-m", "backend=naive,uniform", "task=qa", *QUICK]
JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "xbench.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_all(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, (out + err)[-3000:]
        assert "Traceback" not in err


def records_under(root: Path) -> list[RunResult]:
    return [RunResult.load(path) for path in root.glob("**/result.json")]


def test_stamps_taken_at_one_moment_differ_and_read_as_the_time():
    stamps = {unique_stamp("%Y-%m-%d_%H-%M-%S") for _ in range(1000)}
    assert len(stamps) == 1000
    date_time, suffix = next(iter(stamps)).rsplit("_", 1)
    assert len(date_time) == len("2024-05-01_12-00-00.123") and len(suffix) == 6


def test_one_config_names_one_folder_and_two_configs_two():
    store_plugin_configs(get_registry())
    with initialize_config_module(config_module="xbench_configs", version_base="1.3"):
        first, second = (
            compose(CONFIG_NAME, ["backend=naive"], return_hydra_config=True) for _ in range(2)
        )
    assert first.hydra.run.dir == first.hydra.run.dir, "every read of one config agrees"
    assert first.hydra.sweep.dir == first.hydra.sweep.dir
    assert first.hydra.run.dir != second.hydra.run.dir
    assert first.hydra.sweep.dir != second.hydra.sweep.dir
    assert first.hydra.run.dir.endswith("_naive_qa")


@pytest.mark.slow
def test_two_sweeps_and_two_runs_started_together_keep_every_record(tmp_path):
    """One sweep in-process, one in joblib workers, two single runs: 6 records expected."""
    runs = tmp_path / "runs"
    single = ["run", "backend=naive", "task=qa", *QUICK]
    finish_all([start(*SWEEP), start(*SWEEP, *JOBLIB), start(*single), start(*single)])
    sweeps = sorted((runs / "multirun").iterdir())
    assert len(sweeps) == 2, "one folder per sweep, shared by its cells (workers included)"
    for sweep in sweeps:
        cells = sorted(r.backend.name for r in records_under(sweep))
        assert cells == ["naive", "uniform"], sweep
    singles = [p for p in runs.glob("*/*/result.json") if "multirun" not in p.parts]
    assert len({p.parent for p in singles}) == 2, "two single runs, two folders"
    assert len(records_under(runs)) == 6


@pytest.mark.slow
def test_four_sweeps_started_together_keep_every_record(tmp_path):
    finish_all([start(*SWEEP) for _ in range(4)])
    sweeps = list((tmp_path / "runs" / "multirun").iterdir())
    assert len(sweeps) == 4
    records = records_under(tmp_path / "runs")
    assert len(records) == 8, "4 sweeps × 2 cells"
    assert len({r.run_id for r in records}) == 8
