"""Run records shaped like the runner's, with chosen figures, for leaderboard tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from xbench.measure.types import AttentionShape, Latency, Measurement, Memory
from xbench.records.environment import is_contended
from xbench.records.examples import ExampleScores
from xbench.records.result import (
    PHASES,
    BackendInfo,
    CrossAttentionPhases,
    Efficiency,
    Environment,
    MachineLoad,
    ModelInfo,
    Quality,
    RunResult,
    TaskFacts,
    config_hash,
)

CPU = Environment(device="cpu", cpu="Test CPU", threads=2)
SHAPE = AttentionShape(batch=8, heads=2, nq=10, nk=58, head_dim=32, dtype="float32", device="cpu")
# Each phase's shape, as the runner measures them (a training and a test batch, real masks).
SHAPES = {
    "train": dataclasses.replace(SHAPE, batch=16, passes="fwd+bwd", padded_fraction=0.2),
    "prefill": dataclasses.replace(SHAPE, padded_fraction=0.1),
    "decode": dataclasses.replace(SHAPE, nq=1, passes="decode", padded_fraction=0.1),
}


def record(
    backend: str = "flash",
    seed: int = 0,
    primary: float | None = 0.5,
    task: str = "qa",
    metric: str = "f1",
    higher: bool = True,
    status: str = "ok",
    error: str | None = None,
    latency: float = 1.0,
    decode: float = 0.05,
    memory: int = 1000,
    step_ms: float = 100.0,
    tokens: float = 500.0,
    steps: int = 200,
    fit_seconds: float | None = 40.0,
    loads: tuple[MachineLoad | None, MachineLoad | None] = (None, None),
    options: dict | None = None,
    settings: dict | None = None,
    environment: Environment | None = None,
    created: str = "2024-01-01T00:00:00",
) -> RunResult:
    """A record shaped like the runner's, with chosen figures: ``latency`` and ``memory``
    are the cross-attention train phase's, ``decode`` the decode step's milliseconds;
    ``steps`` optimiser steps in ``fit_seconds``; ``loads`` at training and at the
    measurement. ``settings`` are config groups beside backend and seed (``task``,
    ``trainer``, ...), replacing the default ``task`` and ``model`` nodes."""
    config = {"backend": {"name": backend, **(options or {})}, "task": {"name": task}}
    config |= {"seed": seed, "model": {"name": "tiny"}} | (settings or {})
    ok = status == "ok"
    return RunResult(
        run_id=f"{backend}-{task}-{config_hash(config)}-{created}",
        config_hash=config_hash(config),
        xbench_version="0.1.0",
        git_sha=None,
        backend=BackendInfo(
            name=backend, exact=True, options=options or {}, description=f"{backend} attn"
        ),
        task=TaskFacts(name=task, primary_metric=metric, higher_is_better=higher),
        model=ModelInfo(name="tiny"),
        seed=seed,
        status=status,
        error=error,
        quality=Quality(
            primary_metric=metric,
            primary=primary,
            higher_is_better=higher,
            metrics={} if primary is None else {metric: primary},
        )
        if ok
        else Quality(),
        efficiency=Efficiency(
            train_step=Latency(median_ms=step_ms, iqr_ms=0.0, count=10),
            train_steps=steps,
            fit_seconds=fit_seconds,
            inference_tokens_per_second=tokens,
            decode_step_ms=10 * decode,
            cross_attention=CrossAttentionPhases(
                train=measured("train", latency, memory),
                prefill=measured("prefill", latency / 4, memory // 4),
                decode=measured("decode", decode, memory // 40),
                train_share=2 * latency / step_ms,
                decode_share=0.2,
            ),
            load_at_train=loads[0],
            load_at_measure=loads[1],
        )
        if ok
        else Efficiency(),
        environment=environment or CPU,
        config=config,
        created=created,
    )


def load(load_1m: float, cores: int = 2) -> MachineLoad:
    """A machine load as :func:`~xbench.records.environment.machine_load` records it."""
    contended = is_contended(load_1m, cores)
    return MachineLoad(load_1m=load_1m, cores=cores, threads=cores, contended=contended)


def measured(phase: str, ms: float, memory: int) -> Measurement:
    """An ok measurement of ``phase`` at its shape in :data:`SHAPES`."""
    return Measurement(
        shape=SHAPES[phase],
        latency=Latency(median_ms=ms, iqr_ms=0.0, count=20),
        memory=Memory(bytes=memory, method="live tensor storages"),
    )


def found(*records: RunResult) -> list[tuple[Path, RunResult]]:
    """(path, record) pairs as ``find_results`` yields them."""
    return [(Path(f"/runs/{i}/result.json"), r) for i, r in enumerate(records)]


def not_measured(
    result: RunResult, status: str = "oom", reason: str | None = "CUDA out of memory while timing"
) -> RunResult:
    """``result`` with cross-attention phases that could not be measured (the run ok)."""
    result.efficiency.cross_attention = CrossAttentionPhases(
        **{name: Measurement(shape=SHAPES[name], status=status, reason=reason) for name in PHASES}
    )
    return result


def with_examples(
    result: RunResult,
    folder: Path,
    statistics: list[list[float]],
    formula: str = "mean",
    references: list[list[str]] | None = None,
) -> tuple[Path, RunResult]:
    """``result`` written into ``folder`` with a per-example sidecar of ``statistics``
    (references ``answer <i>`` unless given: they make the example ids), as
    ``find_results`` yields it; ``quality.primary`` becomes the sidecar's figure."""
    references = references or [[f"answer {i}"] for i in range(len(statistics))]
    scores = ExampleScores.build(
        result.quality.primary_metric or "f1",
        formula,
        ["prediction"] * len(statistics),
        references,
        statistics,
    )
    result.quality.examples_file = scores.write(folder).name
    result.quality.test_examples = len(statistics)
    result.quality.primary = scores.value
    return result.write(folder), result
