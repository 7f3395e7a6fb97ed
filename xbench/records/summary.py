"""A run record's headline: its status and main figures as one flat mapping (wandb's run
summary), named by what they are rather than where they sit in the record."""

from __future__ import annotations

from typing import Any

from xbench.measure.types import Measurement
from xbench.records.result import PHASES, ROOFS, RunResult


def headline(result: RunResult) -> dict[str, Any]:
    """Flat figures of a record; a figure that was not measured is left out."""
    quality, efficiency = result.quality, result.efficiency
    phases = efficiency.cross_attention
    out: dict[str, Any] = {
        "status": result.status,
        "primary_metric": quality.primary_metric,
        "primary": quality.primary,
    }
    out |= {f"test/{name}": value for name, value in quality.metrics.items()}
    out |= {
        "train_step_ms": efficiency.train_step_ms,
        "inference_tokens_per_second": efficiency.inference_tokens_per_second,
        "decode_step_ms": efficiency.decode_step_ms,
        "cross_attention/train_share": phases.train_share if phases else None,
        "cross_attention/decode_share": phases.decode_share if phases else None,
        "peak_memory_bytes": efficiency.peak_memory_bytes,
    }
    for name in PHASES if phases else ():
        out |= _phase_figures(f"cross_attention/{name}", phases.phase(name))
        out[f"cross_attention/{name}/{ROOFS[name]}"] = phases.throughput(name)
    return {key: value for key, value in out.items() if value is not None}


def _phase_figures(prefix: str, measured: Measurement | None) -> dict[str, Any]:
    """One phase's status, reason, latency, memory and padded share, keys under ``prefix``."""
    if measured is None:
        return {}
    return {
        f"{prefix}/status": measured.status,
        f"{prefix}/reason": measured.reason,
        f"{prefix}/latency_ms": measured.latency.median_ms if measured.latency else None,
        f"{prefix}/memory_bytes": measured.memory.bytes if measured.memory else None,
        f"{prefix}/padded_fraction": measured.shape.padded_fraction,
    }
