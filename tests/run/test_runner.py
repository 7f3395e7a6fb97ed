"""The runner: one backend × task cell end to end, in process, on tiny settings."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pytest
import torch
from helpers import SMALL_QA, composed_config

import xbench
from xbench.api.backend import BackendSpec
from xbench.measure.inputs import padded_share
from xbench.records.result import PHASES, RunResult
from xbench.registry import get_registry, load_registry
from xbench.run.phases import RealBatch, first_batch, real_batch
from xbench.run.plan import plan_run
from xbench.run.runner import build_model, execute
from xbench_plugins.naive import NaiveAttention

DEBUG = ["trainer=debug", "logger=none", *SMALL_QA]


@pytest.mark.parametrize("backend", ["naive", "flash", "uniform"])
def test_fast_dev_run_per_backend_writes_an_ok_record(backend, tmp_path):
    config = composed_config([f"backend={backend}", *DEBUG])
    result = execute(plan_run(config, get_registry()), tmp_path)
    assert result.status == "ok", result.error
    stored = RunResult.load(tmp_path / "result.json")
    assert stored.backend.name == backend
    assert set(stored.quality.metrics) == {"exact_match", "f1"}
    assert 0.0 <= stored.quality.primary <= 1.0
    phases = stored.efficiency.cross_attention
    for name in PHASES:
        measured = phases.phase(name)
        assert measured.status == "ok" and measured.latency.median_ms > 0, name
    test_batch = first_test_batch(config)
    for name in ("prefill", "decode"):  # the test batch the run decoded first, its own mask
        shape = phases.phase(name).shape
        assert shape.batch == test_batch.batch and shape.nk == test_batch.keys
        assert shape.nk <= stored.task.source_length, "the task's longest test source"
        assert shape.padded_fraction == padded_share(test_batch.mask) > 0
    assert phases.prefill.shape.nq == test_batch.decoder_length and phases.decode.shape.nq == 1
    assert phases.train.shape.batch == config["task"]["batch_size"]
    assert phases.train.shape.padded_fraction > 0, "a training batch of QA sources is ragged"
    assert 0 < phases.train_share <= 1 and 0 < phases.decode_share <= 1
    assert stored.efficiency.decode_step_ms > 0
    efficiency = stored.efficiency
    assert efficiency.fit_seconds >= efficiency.train_step_ms / 1e3, "the fit holds its step"
    assert efficiency.achieved_steps_per_second == efficiency.train_steps / efficiency.fit_seconds
    for load in (efficiency.load_at_train, efficiency.load_at_measure):
        assert (
            load.cores == len(os.sched_getaffinity(0)) and load.threads == torch.get_num_threads()
        )
        assert load.load_1m >= 0 and load.contended is (load.load_1m > load.cores)
    assert stored.environment.torch == torch.__version__
    assert stored.task.data["checksum"]


def first_test_batch(config: dict) -> RealBatch:
    """The shape and mask of the first test batch of the run's task, built again."""
    plan = plan_run(config, get_registry())
    task = plan.task.build(plan.task_options)
    model = build_model(plan, task)
    return real_batch(model, first_batch(task.datamodule.test_dataloader()))


def test_measure_settings_time_every_phase(tmp_path):
    config = composed_config(["backend=naive", "measure.repeats=2", "measure.warmup=0", *DEBUG])
    result = execute(plan_run(config, get_registry()), tmp_path)
    assert result.status == "ok", result.error
    phases = result.efficiency.cross_attention
    assert [phases.phase(name).latency.count for name in PHASES] == [2, 2, 2]
    assert phases.decode.prepare.count == 2


def test_same_seed_same_metrics(tmp_path):
    steps = ["trainer.max_steps=12", "trainer.val_check_interval=6"]
    config = composed_config(["backend=flash", "logger=none", *SMALL_QA, *steps])
    first = execute(plan_run(config, get_registry()), tmp_path / "a")
    second = execute(plan_run(config, get_registry()), tmp_path / "b")
    assert first.status == second.status == "ok"
    assert first.quality.metrics == second.quality.metrics
    assert first.config_hash == second.config_hash


class _Exploding(NaiveAttention):
    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        raise RuntimeError("kernel exploded")


class _NaNs(NaiveAttention):
    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        return super().forward(q, k, v, key_padding_mask, scale) * float("nan")


class _Refusing(NaiveAttention):
    def supports(self, q, k, v, key_padding_mask=None):
        return "needs Nk divisible by 4096"


@dataclass
class _NoOptions:
    pass


class _BadBackends:
    @xbench.hookimpl
    def xbench_register_backends(self, register):
        for name, cls in (("exploding", _Exploding), ("nans", _NaNs), ("refusing", _Refusing)):
            register(
                BackendSpec(name=name, build=lambda o, c=cls: c(), options=_NoOptions, exact=False)
            )


@pytest.mark.parametrize(
    "backend, status, message",
    [
        ("exploding", "failed", "kernel exploded"),
        ("nans", "diverged", "loss is nan"),
        ("refusing", "unsupported", "divisible by 4096"),
    ],
)
def test_a_failing_cell_is_a_typed_record(backend, status, message, tmp_path):
    registry = load_registry(extra_plugins=[("bad", _BadBackends())])
    config = composed_config(["backend=naive", *DEBUG], registry)
    config["backend"] = {"name": backend}
    result = execute(plan_run(config, registry), tmp_path)
    assert result.status == status
    assert message in result.error
    assert json.loads((tmp_path / "result.json").read_text())["status"] == status


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.heads=3"], "d_model=64 must be divisible by heads=3"),
        (["model.encoder_layers=0"], "model.encoder_layers=0 is out of range"),
        (["optim.lr=-1"], "optim.lr=-1 is out of range"),
        (["measure.warmup=-1"], "measure.warmup=-1 is out of range"),
        (["logger.mode=sometimes"], "logger.mode='sometimes' is not allowed"),
    ],
)
def test_plan_run_rejects_bad_core_settings(overrides, message):
    from xbench.api.errors import UserError

    config = composed_config(overrides)
    with pytest.raises(UserError, match=message):
        plan_run(config, get_registry())


class _WarningTask:
    """QA whose build reports a data problem, as a truncating task does."""

    @xbench.hookimpl
    def xbench_register_tasks(self, register):
        from xbench.api.task import TaskSpec
        from xbench_tasks.qa import QAOptions, build_qa

        def build(options):
            task = build_qa(options)
            task.data_warnings.append("max_source_tokens=9 cut 3 of 40 answers (8%)")
            return task

        register(TaskSpec(name="warned", modality="text", build=build, options=QAOptions))


def test_data_warnings_reach_the_console_and_the_record(tmp_path, capsys):
    registry = load_registry(extra_plugins=[("warned", _WarningTask())])
    config = composed_config(["backend=naive", *DEBUG], registry)
    config["task"]["name"] = "warned"

    result = execute(plan_run(config, registry), tmp_path)

    line = "max_source_tokens=9 cut 3 of 40 answers (8%)"
    assert f"data warning (warned): {line}" in capsys.readouterr().out
    assert RunResult.load(tmp_path / "result.json").task.warnings == [line]
    assert result.status == "ok", result.error


def test_a_banded_encoder_runs_and_is_recorded(tmp_path):
    config = composed_config(["backend=flash", "model.encoder_window=4", *DEBUG])

    result = execute(plan_run(config, get_registry()), tmp_path)

    assert result.status == "ok", result.error
    assert RunResult.load(tmp_path / "result.json").model.settings["encoder_window"] == 4
