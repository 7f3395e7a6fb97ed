"""Scale-out: sweeps whose cells run in other processes (Hydra's joblib and submitit
launchers) and the cluster preset. Every worker must find the installed plugins, a
third-party one included, although only the parent parsed the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import SMALL_QA
from hydra import compose, initialize_config_module

from xbench.config.compose import CONFIG_NAME, store_plugin_configs
from xbench.registry import get_registry

PROBE_PLUGIN = '''
"""A third-party backend that reports the process it ran in."""
import os
from dataclasses import dataclass

import xbench
from xbench.api.backend import AttentionBackend, BackendSpec, masked_softmax_weights


@dataclass
class ProbeOptions:
    pass


class Probe(AttentionBackend):
    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        return masked_softmax_weights(q, k, key_padding_mask, scale) @ v

    def describe(self):
        return {"kernel": "probe", "pid": os.getpid()}


@xbench.hookimpl
def xbench_register_backends(register):
    register(
        BackendSpec(
            name="probe",
            build=lambda options: Probe(),
            options=ProbeOptions,
            exact=True,
            description="probe",
        )
    )
'''


def install_probe_plugin(site: Path) -> None:
    """A distribution found through its entry point only: on PYTHONPATH, not in the venv."""
    (site / "xbench_probe-0.1.dist-info").mkdir(parents=True)
    (site / "xbench_probe.py").write_text(textwrap.dedent(PROBE_PLUGIN))
    info = site / "xbench_probe-0.1.dist-info"
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: xbench-probe\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[xbench]\nprobe = xbench_probe\n")


def sweep(tmp_path: Path, *overrides: str) -> tuple[int, list[dict]]:
    """Run ``xbench run -m`` with the probe plugin installed; (its pid, the cell records)."""
    site = tmp_path / "site"
    install_probe_plugin(site)
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    )
    quick = ["trainer=debug", "logger=none", "threads=1", "measure.repeats=2", *SMALL_QA]
    args = ["run", "-m", *overrides, *quick]
    process = subprocess.Popen(
        [sys.executable, "-m", "xbench.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, (stdout + stderr)[-3000:]
    records = sorted((tmp_path / "runs" / "multirun").glob("*/*/result.json"))
    return process.pid, [json.loads(r.read_text()) for r in records]


def check_cells_ran_in_workers(parent: int, records: list[dict]) -> None:
    assert sorted(r["backend"]["name"] for r in records) == ["naive", "probe"]
    assert all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    (probe,) = [r for r in records if r["backend"]["name"] == "probe"]
    assert probe["backend"]["describe"]["pid"] != parent, "the cell ran in a worker process"


@pytest.mark.slow
def test_joblib_launcher_runs_cells_in_parallel_worker_processes(tmp_path):
    parent, records = sweep(
        tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "backend=naive,probe"
    )
    check_cells_ran_in_workers(parent, records)


@pytest.mark.slow
def test_submitit_local_executor_runs_each_cell_as_a_job(tmp_path):
    parent, records = sweep(tmp_path, "hydra/launcher=submitit_local", "backend=naive,probe")
    check_cells_ran_in_workers(parent, records)
    assert list((tmp_path / "runs" / "multirun").glob("*/.submitit/*/*_result.pkl"))


def test_slurm_preset_sets_cluster_defaults_on_submitit_slurm():
    store_plugin_configs(get_registry())
    with initialize_config_module(config_module="xbench_configs", version_base="1.3"):
        overrides = ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"]
        cfg = compose(CONFIG_NAME, overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.timeout_min, launcher.gpus_per_node, launcher.cpus_per_task) == (120, 1, 8)
    assert launcher.partition == "gpu" and launcher.signal_delay_s == 120, "submitit's own keys"
