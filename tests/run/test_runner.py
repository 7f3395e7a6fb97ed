"""The runner: one backend × task cell end to end, in process, on tiny settings."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from helpers import SMALL_QA, composed_config

import xbench
from xbench.api.backend import BackendSpec
from xbench.records.result import RunResult
from xbench.registry import get_registry, load_registry
from xbench.run.plan import plan_run
from xbench.run.runner import execute
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
    xattn = stored.efficiency.cross_attention
    assert xattn.status == "ok" and xattn.latency.median_ms > 0
    assert xattn.shape.nk == stored.task.source_length
    assert stored.environment.torch == torch.__version__
    assert stored.task.data["checksum"]


def test_measure_settings_shape_the_timed_call(tmp_path):
    config = composed_config(["backend=naive", "measure.batch_size=3", "measure.repeats=2", *DEBUG])
    result = execute(plan_run(config, get_registry()), tmp_path)
    assert result.status == "ok", result.error
    timed = result.efficiency.cross_attention
    assert timed.shape.batch == 3 and timed.latency.count == 2


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
