"""A measurement that fails after a successful training is a typed sub-record: the run
stays ``ok`` and keeps its quality figures (a real run on tiny settings)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from helpers import SMALL_QA, composed_config

import xbench
from xbench.api.backend import BackendSpec
from xbench.config.settings import MeasureSettings
from xbench.records.result import RunResult
from xbench.registry import load_registry
from xbench.run.plan import plan_run
from xbench.run.runner import execute
from xbench_plugins.naive import NaiveAttention


class OutOfMemoryWhenTimed(NaiveAttention):
    """Naive attention in training steps (autograd on) and in Lightning's validation, test
    and the heatmaps (inference mode, or batches of the task's sizes). A call under
    ``torch.no_grad()`` outside inference mode at the measurement's batch size is the
    measurement after training, and there it runs out of memory."""

    def __init__(self, measured_batch: int) -> None:
        super().__init__()
        self.measured_batch = measured_batch
        self.calls = {"train": 0, "eval": 0, "timed": 0}
        self.timed_in_training_mode: list[bool] = []

    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        measured = not torch.is_inference_mode_enabled() and q.shape[0] == self.measured_batch
        if torch.is_grad_enabled():
            self.calls["train"] += 1
        elif not measured:
            self.calls["eval"] += 1
        else:
            self.calls["timed"] += 1
            self.timed_in_training_mode.append(self.training)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB")
        return super().forward(q, k, v, key_padding_mask, scale)


@dataclass
class _NoOptions:
    pass


def test_an_oom_while_timing_keeps_the_run_ok_with_its_quality(tmp_path):
    built: list[OutOfMemoryWhenTimed] = []
    measured_batch = MeasureSettings().batch_size

    def build(options):
        built.append(OutOfMemoryWhenTimed(measured_batch))
        return built[-1]

    class Plugin:
        @xbench.hookimpl
        def xbench_register_backends(self, register):
            register(
                BackendSpec(
                    name="oom_when_timed",
                    build=build,
                    options=_NoOptions,
                    exact=True,
                    description="naive attention that runs out of memory when timed",
                )
            )

    registry = load_registry(extra_plugins=[("oom_when_timed", Plugin())])
    overrides = ["backend=oom_when_timed", "trainer=debug", "logger=none", *SMALL_QA]
    config = composed_config(overrides, registry)
    assert config["measure"]["batch_size"] == measured_batch
    # the measurement's batch is told apart from every batch of training and evaluation
    assert measured_batch not in (
        config["task"]["batch_size"],
        config["task"]["eval_batch_size"],
        config["heatmaps"]["examples"],
    )

    result = execute(plan_run(config, registry), tmp_path)

    assert result.status == "ok", result.error
    assert sum(b.calls["train"] for b in built) > 0  # trained and evaluated through it
    assert sum(b.calls["eval"] for b in built) > 0
    assert sum(b.calls["timed"] for b in built) == 1  # the cold call; nothing after it
    assert [mode for b in built for mode in b.timed_in_training_mode] == [False]  # eval mode
    stored = RunResult.load(tmp_path / "result.json")
    assert stored.status == "ok" and stored.error is None
    assert set(stored.quality.metrics) == {"exact_match", "f1"}
    assert 0.0 <= stored.quality.primary <= 1.0
    xattn = stored.efficiency.cross_attention
    assert xattn.status == "oom"
    assert xattn.reason == "CUDA out of memory. Tried to allocate 64.00 GiB"
    assert xattn.latency is None and xattn.memory is None
    assert xattn.shape.nk == stored.task.source_length
    assert xattn.shape.batch == config["measure"]["batch_size"]
    assert stored.efficiency.train_steps > 0
