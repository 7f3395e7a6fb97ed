"""Console views of run records (rich): a row per run, then a row per cross-attention
phase of each run."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from xbench.api.errors import first_line
from xbench.measure.types import Measurement
from xbench.records.result import PHASES, ROOFS, RunResult
from xbench.views.units import format_bytes


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def summary_table(results: Iterable[RunResult]) -> Table:
    """One row per run: quality, the run's own steps and the share cross-attention took,
    and the steps per second the whole fit achieved."""
    table = Table(title="xbench results", show_lines=False)
    for column in (
        "backend",
        "task",
        "status",
        "primary",
        "metrics",
        "train step ms",
        "x-attn share",
        "achieved steps/s",
        "decode step ms",
        "x-attn share",
        "infer tok/s",
        "peak mem",
        "attn on truth",
    ):
        table.add_column(column, overflow="fold")
    for r in results:
        eff, quality = r.efficiency, r.quality
        phases = eff.cross_attention
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
            _share(phases.train_share if phases else None),
            _fmt(eff.achieved_steps_per_second, ".2f"),
            _fmt(eff.decode_step_ms, ".2f"),
            _share(phases.decode_share if phases else None),
            _fmt(eff.inference_tokens_per_second, ".0f"),
            format_bytes(eff.peak_memory_bytes),
            _fmt(r.fidelity.mass_on_truth if r.fidelity else None),
        )
    return table


def fidelity_text(result: RunResult) -> str | None:
    """Where the run's cross-attention looked, in one line: the share on the true
    positions per layer (chance level beside it), AER, and the sparsity profile; None
    when the run measured none of it."""
    fidelity = result.fidelity
    if fidelity is None:
        return None
    parts = []
    if fidelity.mass_on_truth is not None:
        layers = " / ".join(_fmt(layer.mass_on_truth) for layer in fidelity.layers)
        parts.append(
            f"attention on the true positions {fidelity.mass_on_truth:.3f} (last layer; "
            f"layers {layers}; uniform {_fmt(fidelity.uniform_mass)}; "
            f"{fidelity.aligned_tokens} tokens), AER {_fmt(fidelity.aer)}"
        )
    if sparsity := fidelity.sparsity:
        parts.append(
            f"50 / 90 / 99 % of a token's attention in {sparsity.keys_50:g} / "
            f"{sparsity.keys_90:g} / {sparsity.keys_99:g} keys ({sparsity.fraction_50:.0%} / "
            f"{sparsity.fraction_90:.0%} / {sparsity.fraction_99:.0%} of "
            f"{sparsity.real_keys:g}), entropy {sparsity.entropy:.2f} nats "
            f"({_fmt(sparsity.entropy_normalised, '.2f')} of uniform)"
        )
    if fidelity.note:
        parts.append(fidelity.note)
    if fidelity.seconds is not None:
        parts.append(f"measured in {fidelity.seconds:.2f} s")
    return "; ".join(parts)


def throughput_text(value: float | None, roof: str) -> str:
    """``0.021 TFLOP/s`` or, for the memory-bound decode step, ``3.42 GB/s`` read."""
    if value is None:
        return "-"
    return f"{value / 1e9:.2f} GB/s" if roof == "bytes_per_second" else f"{value:.3f} TFLOP/s"


def shape_text(measured: Measurement) -> str:
    """``B×Nq×Nk`` of a phase, with the share of padded keys in its real mask."""
    shape = measured.shape
    padded = "" if shape.padded_fraction is None else f", {shape.padded_fraction:.0%} padded"
    return f"{shape.batch}×{shape.nq}×{shape.nk}{padded}"


def phases_table(results: Iterable[RunResult]) -> Table:
    """One row per measured phase of each run: shape, latency, memory and throughput."""
    table = Table(title="cross-attention phases (one layer, real masks)", show_lines=False)
    for column in (
        "run",
        "phase",
        "B×Nq×Nk",
        "ms (median ± IQR)",
        "cold ms",
        "memory",
        "throughput",
    ):
        table.add_column(column, overflow="fold")
    for r in results:
        phases = r.efficiency.cross_attention
        for name in PHASES if phases else ():
            measured = phases.phase(name)
            if measured is None:
                continue
            latency = measured.latency
            table.add_row(
                f"{r.backend.name} × {r.task.name}",
                name,
                shape_text(measured),
                measured.why_not_measured or (latency.text if latency else "-"),
                _fmt(latency.cold_ms if latency else None),
                format_bytes(measured.memory.bytes if measured.memory else None),
                throughput_text(phases.throughput(name), ROOFS[name]),
            )
    return table


def _loaded(result: RunResult) -> list[str]:
    """A line for each moment the machine was under contention, with its load."""
    eff = result.efficiency
    loads = {
        "the start of training": eff.load_at_train,
        "the cross-attention measurement": eff.load_at_measure,
    }
    return [
        f"load {load.load_1m:.2f} on {load.cores} usable cores at {when} ({load.threads} threads):"
        " CPU figures read slower than on an idle machine"
        for when, load in loads.items()
        if load and load.contended
    ]


def print_summary(results: Iterable[RunResult], console: Console | None = None) -> None:
    results = list(results)
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log file: don't squeeze the table into 80 columns
            console = Console(width=160)
    console.print(summary_table(results))
    if any(r.efficiency.cross_attention for r in results):
        console.print(phases_table(results))
    for r in results:
        cell = escape(f"{r.backend.name} × {r.task.name}")
        phases = r.efficiency.cross_attention
        if r.status != "ok" and r.error:
            messages = [f"[red]{cell}: {r.status}[/red] {escape(first_line(r.error))}"]
        elif r.status == "ok":
            messages = [f"[yellow]{cell}: (loaded)[/yellow] {escape(line)}" for line in _loaded(r)]
            for name, why in phases.unmeasured() if phases else ():
                messages.append(
                    f"[yellow]{cell}: cross-attention {name} not measured:[/yellow] {escape(why)}"
                )
            if phases and phases.note:
                messages.append(f"[dim]{cell}: {escape(phases.note)}[/dim]")
            if fidelity := fidelity_text(r):
                messages.append(f"[dim]{cell}: {escape(fidelity)}[/dim]")
        else:
            continue
        for message in messages:
            console.print(message, highlight=False)
