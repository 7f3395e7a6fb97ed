"""The fit's wall time and the machine's load in a record: written, read back, absent in
older records, and the load read from the OS with contention flagged."""

from __future__ import annotations

import json
import os

import pytest
import torch
from helpers.records import load, record

from xbench.records.environment import CONTENTION_MARGIN, machine_load
from xbench.records.result import Efficiency, MachineLoad, RunResult

NEW_FIELDS = ("fit_seconds", "load_at_train", "load_at_measure")


def test_fit_time_and_loads_survive_the_json_round_trip(tmp_path):
    written = record("flash", steps=300, fit_seconds=60.0, loads=(load(3.5), load(1.0)))
    read = RunResult.load(written.write(tmp_path))
    assert read.efficiency == written.efficiency
    assert read.efficiency.achieved_steps_per_second == pytest.approx(5.0)
    assert read.efficiency.contended_at == ["train"]
    stored = json.loads((tmp_path / "result.json").read_text())["efficiency"]
    assert stored["load_at_train"] == {
        "load_1m": 3.5,
        "cores": 2,
        "threads": 2,
        "contended": True,
    }
    assert stored["load_at_measure"]["contended"] is False


def test_a_record_without_the_new_fields_reads_them_as_not_measured(tmp_path):
    data = record("flash").to_dict()
    for name in NEW_FIELDS:
        del data["efficiency"][name]
    (tmp_path / "result.json").write_text(json.dumps(data))
    efficiency = RunResult.load(tmp_path / "result.json").efficiency
    assert [getattr(efficiency, name) for name in NEW_FIELDS] == [None, None, None]
    assert efficiency.achieved_steps_per_second is None and efficiency.contended_at == []
    assert efficiency.train_step_ms == 100.0, "the older figures stay"


@pytest.mark.parametrize("steps, seconds", [(None, 10.0), (0, 10.0), (100, None), (100, 0.0)])
def test_no_achieved_rate_without_steps_and_time(steps, seconds):
    assert Efficiency(train_steps=steps, fit_seconds=seconds).achieved_steps_per_second is None


def test_the_load_is_the_os_one_minute_average_against_the_usable_cores():
    now = machine_load()
    assert now["load_1m"] == pytest.approx(os.getloadavg()[0], abs=1.0)
    assert now["cores"] == len(os.sched_getaffinity(0))
    assert now["threads"] == torch.get_num_threads()
    assert now["contended"] is (now["load_1m"] > now["cores"] + CONTENTION_MARGIN)
    assert MachineLoad.from_dict(now).load_1m == now["load_1m"]


@pytest.mark.parametrize(
    "above, contended", [(1.0, True), (0.6, True), (0.2, False), (-0.5, False)]
)
def test_a_load_over_half_a_core_above_the_usable_ones_is_contention(monkeypatch, above, contended):
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + above, 0.0, 0.0))
    assert machine_load()["contended"] is contended


def test_without_a_load_average_the_load_and_the_flag_are_none(monkeypatch):
    monkeypatch.delattr(os, "getloadavg")
    now = machine_load()
    assert now["load_1m"] is None and now["contended"] is None
    assert now["cores"] == len(os.sched_getaffinity(0))
