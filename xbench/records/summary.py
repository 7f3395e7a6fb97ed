"""A run record's headline: its status and main figures as one flat mapping (wandb's run
summary), named by what they are rather than where they sit in the record."""

from __future__ import annotations

from typing import Any

from xbench.records.result import RunResult


def headline(result: RunResult) -> dict[str, Any]:
    """Flat figures of a record; a figure that was not measured is left out."""
    quality, efficiency = result.quality, result.efficiency
    measured = efficiency.cross_attention
    out: dict[str, Any] = {
        "status": result.status,
        "primary_metric": quality.primary_metric,
        "primary": quality.primary,
    }
    out |= {f"test/{name}": value for name, value in quality.metrics.items()}
    out |= {
        "train_step_ms": efficiency.train_step_ms,
        "inference_tokens_per_second": efficiency.inference_tokens_per_second,
        "cross_attention/status": measured.status if measured else None,
        "cross_attention/reason": measured.reason if measured else None,
        "cross_attention/latency_ms": efficiency.attention_ms,
        "cross_attention/memory_bytes": efficiency.attention_bytes,
        "peak_memory_bytes": efficiency.peak_memory_bytes,
    }
    return {key: value for key, value in out.items() if value is not None}
