"""Sweeps: seeds as cells, failing cells as typed records, Ctrl-C on record, and a sweep
with failing third-party backends that still ends in a complete leaderboard."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest
from helpers import SMALL_QA, composed_config

import xbench
from xbench.api.backend import BackendSpec
from xbench.api.errors import UserError
from xbench.config.compose import expand_seeds
from xbench.records.result import RunResult
from xbench.registry import load_registry
from xbench.run.plan import plan_run
from xbench.run.runner import execute
from xbench_plugins.naive import NaiveAttention


@pytest.mark.parametrize(
    "args, expected",
    [
        (["backend=naive", "seeds=3"], ["-m", "backend=naive", "seed=range(0,3)"]),
        (["-m", "seed=5", "seeds=2"], ["-m", "seed=range(5,7)"]),
        (["--multirun", "seeds=1"], ["--multirun", "seed=range(0,1)"]),
        (["backend=naive", "seed=4"], ["backend=naive", "seed=4"]),
    ],
)
def test_seeds_become_a_seed_sweep(args, expected):
    assert expand_seeds(args) == expected


@pytest.mark.parametrize(
    "args, message",
    [
        (["seeds=0"], "seeds='0' must be a whole number >= 1"),
        (["seeds=two"], "seeds='two' must be a whole number"),
        (["seeds=2", "seed=1,2"], "needs one starting seed=S, not seed='1,2'"),
    ],
)
def test_bad_seeds_are_user_errors(args, message):
    with pytest.raises(UserError, match=message):
        expand_seeds(args)


class _CtrlC(NaiveAttention):
    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        raise KeyboardInterrupt


@dataclass
class _NoOptions:
    pass


class _InterruptedBackend:
    @xbench.hookimpl
    def xbench_register_backends(self, register):
        register(
            BackendSpec(
                name="ctrl_c",
                build=lambda o: _CtrlC(),
                options=_NoOptions,
                exact=False,
                description="Ctrl-C",
            )
        )


def test_ctrl_c_in_a_cell_stops_it_on_record(tmp_path):
    registry = load_registry(extra_plugins=[("ctrl_c", _InterruptedBackend())])
    config = composed_config(["trainer=debug", "logger=none", *SMALL_QA], registry)
    config["backend"] = {"name": "ctrl_c"}
    handler = signal.getsignal(signal.SIGINT)
    try:
        # Lightning turns Ctrl-C during fit into SystemExit after its own shutdown
        with pytest.raises((KeyboardInterrupt, SystemExit)):
            execute(plan_run(config, registry), tmp_path)
    finally:
        signal.signal(signal.SIGINT, handler)
    record = RunResult.load(tmp_path / "result.json")
    assert record.status == "failed" and record.error.startswith("interrupted")


FAILING_PLUGIN = """
from dataclasses import dataclass

import torch

import xbench
from xbench.api.backend import BackendSpec
from xbench_plugins.naive import NaiveAttention


class Exploding(NaiveAttention):
    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        raise RuntimeError("kernel exploded")


class OutOfMemory(NaiveAttention):
    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB")


class NaNs(NaiveAttention):
    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        return super().forward(q, k, v, key_padding_mask, scale) * float("nan")


@dataclass
class NoOptions:
    pass


@xbench.hookimpl
def xbench_register_backends(register):
    for name, cls in (("exploding", Exploding), ("oom", OutOfMemory), ("nans", NaNs)):
        register(
                BackendSpec(
                    name=name,
                    build=lambda o, c=cls: c(),
                    options=NoOptions,
                    exact=False,
                    description="fails on purpose",
                )
            )
"""


def install_failing_plugin(site) -> dict[str, str]:
    """A third-party distribution with three failing backends, importable via PYTHONPATH."""
    dist = site / "xbench_failing-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: xbench-failing\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[xbench]\nfailing = xbench_failing_backends\n")
    (site / "xbench_failing_backends.py").write_text(textwrap.dedent(FAILING_PLUGIN))
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


@pytest.mark.slow
def test_a_sweep_with_failing_cells_finishes_and_reports_them(tmp_path):
    env = install_failing_plugin(tmp_path / "site")
    backends = "naive,exploding,oom,nans"
    done = subprocess.run(
        [sys.executable, "-m", "xbench.cli", "run", "-m", f"backend={backends}", "task=qa"]
        + ["trainer=debug", "logger=wandb", "threads=1", *SMALL_QA],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last == "sweep: 4 cells — 1 ok, 1 diverged, 1 failed, 1 oom", "and says why"
    (sweep,) = (tmp_path / "runs" / "multirun").iterdir()
    statuses = {r.backend.name: r.status for r in map(RunResult.load, sweep.glob("*/result.json"))}
    assert statuses == {"naive": "ok", "exploding": "failed", "oom": "oom", "nans": "diverged"}

    rows = {r["backend"]: r for r in csv.DictReader((sweep / "leaderboard.csv").open())}
    assert rows["naive"]["status"] == "ok" and rows["naive"]["rank"] == "1"
    assert rows["exploding"]["reason"] == "RuntimeError: kernel exploded"
    assert rows["oom"]["reason"] == "CUDA out of memory. Tried to allocate 64.00 GiB"
    assert rows["nans"]["status"] == "diverged" and "nan" in rows["nans"]["reason"]
    page = (sweep / "leaderboard.html").read_text()
    assert "RuntimeError: kernel exploded" in page and "fails on purpose" in page
    assert "kernel exploded" in done.stdout, "the console leaderboard shows the reasons"
    tables = list(sweep.glob("wandb/offline-run-*/files/media/table/leaderboard/qa_*.table.json"))
    assert len(tables) == 1, "the sweep's wandb leaderboard run holds the qa table"
