"""Run records shaped like the runner's, with chosen figures, for leaderboard tests."""

from __future__ import annotations

from pathlib import Path

from xbench.measure.types import AttentionShape, Latency, Measurement, Memory
from xbench.records.result import (
    BackendInfo,
    Efficiency,
    Environment,
    ModelInfo,
    Quality,
    RunResult,
    TaskFacts,
    config_hash,
)

CPU = Environment(device="cpu", cpu="Test CPU", threads=2)
SHAPE = AttentionShape(batch=8, heads=2, nq=10, nk=58, head_dim=32, dtype="float32", device="cpu")


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
    memory: int = 1000,
    step_ms: float = 100.0,
    tokens: float = 500.0,
    options: dict | None = None,
    environment: Environment | None = None,
    created: str = "2024-01-01T00:00:00",
) -> RunResult:
    """A record shaped like the runner's, with chosen figures."""
    config = {"backend": {"name": backend, **(options or {})}, "task": {"name": task}}
    config |= {"seed": seed, "model": {"name": "tiny"}}
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
            inference_tokens_per_second=tokens,
            cross_attention=Measurement(
                shape=SHAPE,
                latency=Latency(median_ms=latency, iqr_ms=0.0, count=20),
                memory=Memory(bytes=memory, method="live tensor storages"),
            ),
        )
        if ok
        else Efficiency(),
        environment=environment or CPU,
        config=config,
        created=created,
    )


def found(*records: RunResult) -> list[tuple[Path, RunResult]]:
    """(path, record) pairs as ``find_results`` yields them."""
    return [(Path(f"/runs/{i}/result.json"), r) for i, r in enumerate(records)]


def not_measured(
    result: RunResult, status: str = "oom", reason: str | None = "CUDA out of memory while timing"
) -> RunResult:
    """``result`` with a cross-attention measurement that could not be taken (the run ok)."""
    result.efficiency.cross_attention = Measurement(shape=SHAPE, status=status, reason=reason)
    return result
