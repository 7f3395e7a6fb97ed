"""A measurement that fails after a successful training is a typed sub-record: the run
stays ``ok`` and keeps its quality figures (a real run on tiny settings)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from helpers import SMALL_QA, composed_config

import xbench
from xbench.api.backend import BackendSpec
from xbench.records.result import PHASES, RunResult
from xbench.registry import load_registry
from xbench.run.plan import plan_run
from xbench.run.runner import execute
from xbench_plugins.naive import NaiveAttention


class OutOfMemoryWhenTimed(NaiveAttention):
    """Naive attention in training steps (training mode), in Lightning's validation
    (no_grad), the heatmaps at the end of training and the test (inference mode: only the
    test loop uses it). A call in eval mode outside inference mode after the test is a
    measurement after training (the fidelity pass, the phases), and there it runs out of
    memory."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = {"train": 0, "eval": 0, "timed": 0}
        self.tested = False

    def forward(self, q, k, v, key_padding_mask=None, scale=None):
        self.tested |= torch.is_inference_mode_enabled()
        if self.training:
            self.calls["train"] += 1
        elif torch.is_inference_mode_enabled() or not self.tested:
            self.calls["eval"] += 1
        else:
            self.calls["timed"] += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB")
        return super().forward(q, k, v, key_padding_mask, scale)


@dataclass
class _NoOptions:
    pass


def test_an_oom_while_timing_keeps_the_run_ok_with_its_quality(tmp_path):
    built: list[OutOfMemoryWhenTimed] = []

    def build(options):
        built.append(OutOfMemoryWhenTimed())
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

    result = execute(plan_run(config, registry), tmp_path)

    assert result.status == "ok", result.error
    assert sum(b.calls["train"] for b in built) > 0  # trained and evaluated through it
    assert sum(b.calls["eval"] for b in built) > 0
    # the fidelity pass over the test set, then each phase's cold call, in eval mode (a
    # call in training mode counts as training)
    assert sum(b.calls["timed"] for b in built) == 4
    stored = RunResult.load(tmp_path / "result.json")
    assert stored.status == "ok" and stored.error is None
    assert stored.fidelity.note == (
        "not measured: OutOfMemoryError: CUDA out of memory. Tried to allocate 64.00 GiB"
    )
    assert set(stored.quality.metrics) == {"exact_match", "f1"}
    assert 0.0 <= stored.quality.primary <= 1.0
    phases = stored.efficiency.cross_attention
    for name in PHASES:
        xattn = phases.phase(name)
        assert xattn.status == "oom", name
        assert xattn.reason == "CUDA out of memory. Tried to allocate 64.00 GiB"
        assert xattn.latency is None and xattn.memory is None
    assert phases.train.shape.batch == config["task"]["batch_size"]
    assert phases.decode.shape.batch == config["task"]["eval_batch_size"]
    assert phases.prefill.shape.nk == phases.decode.shape.nk <= stored.task.source_length
    assert phases.train_share is None and phases.decode_share is None, "no figure, no share"
    assert stored.efficiency.train_steps > 0 and stored.efficiency.decode_step_ms > 0
