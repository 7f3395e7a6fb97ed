"""Console views of run records (rich)."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from xbench.api.errors import first_line
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
        latency = eff.attention_latency
        arrow = "↓" if quality.higher_is_better is False else "↑"
        table.add_row(
            r.backend.name,
            r.task.name,
            r.status if r.status == "ok" else f"[red]{r.status}[/red]",
            "-"
            if quality.primary is None
            else f"{quality.primary_metric} {arrow} {quality.primary:.3f}",
            " ".join(f"{k}={_fmt(v)}" for k, v in quality.metrics.items()),
            _fmt(eff.train_step_ms, ".1f"),
            _fmt(eff.inference_tokens_per_second, ".0f"),
            "-" if latency is None else latency.text,
            format_bytes(eff.attention_bytes),
            format_bytes(eff.peak_memory_bytes),
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
        cell = escape(f"{r.backend.name} × {r.task.name}")
        measured = r.efficiency.cross_attention
        if r.status != "ok" and r.error:
            message = f"[red]{cell}: {r.status}[/red] {escape(first_line(r.error))}"
        elif r.status == "ok" and measured and measured.why_not_measured:
            message = (
                f"[yellow]{cell}: cross-attention not measured:[/yellow] "
                f"{escape(measured.why_not_measured)}"
            )
        else:
            continue
        console.print(message, highlight=False)
