"""Console views of run records (rich)."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.table import Table

from xbench.records.result import RunResult
from xbench.views.units import format_bytes


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def summary_table(results: Iterable[RunResult]) -> Table:
    """One row per run: quality, latency and memory side by side."""
    table = Table(title="xbench results", show_lines=False)
    for column in (
        "backend",
        "task",
        "status",
        "primary",
        "metrics",
        "train step ms",
        "infer tok/s",
        "x-attn ms (median ± IQR)",
        "x-attn mem",
        "peak mem",
    ):
        table.add_column(column, overflow="fold")
    for r in results:
        eff, quality = r.efficiency, r.quality
        xattn = eff.get("cross_attention", {})
        latency = xattn.get("latency_ms") or {}
        primary = quality.get("primary")
        arrow = "↑" if quality.get("higher_is_better", True) else "↓"
        table.add_row(
            r.backend["name"],
            r.task["name"],
            r.status if r.status == "ok" else f"[red]{r.status}[/red]",
            "-" if primary is None else f"{quality['primary_metric']} {arrow} {primary:.3f}",
            " ".join(f"{k}={v:.3f}" for k, v in quality.get("metrics", {}).items()),
            _fmt(eff.get("train_step_ms", {}).get("median"), ".1f"),
            _fmt(eff.get("inference_tokens_per_second"), ".0f"),
            "-" if not latency else f"{latency['median']:.3f} ± {latency['iqr']:.3f}",
            format_bytes(xattn.get("memory_bytes")),
            format_bytes(eff.get("peak_memory", {}).get("bytes")),
        )
    return table


def print_summary(results: Iterable[RunResult], console: Console | None = None) -> None:
    results = list(results)
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log file: don't squeeze the table into 80 columns
            console = Console(width=160)
    console.print(summary_table(results))
    for r in results:
        if r.status != "ok" and r.error:
            console.print(
                f"[red]{r.backend['name']} × {r.task['name']}: {r.status}[/red] "
                f"{r.error.splitlines()[0] if r.error else ''}",
                highlight=False,
            )
