"""Views of one bench report: console tables (rich), JSON, CSV, log-log PNGs, wandb.

All of them read the same report dict, written by :func:`xbench.bench.command.run_bench`.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from xbench.atomic import write_atomic
from xbench.bench.analysis import median_ms, memory_bytes, series

LINE_STYLES = ("-", "--", ":", "-.")  # one per series; one colour per backend
CSV_FIELDS = (
    "backend",
    "status",
    "batch",
    "heads",
    "nq",
    "nk",
    "head_dim",
    "dtype",
    "pass",
    "padded_fraction",
    "source",
    "median_ms",
    "iqr_ms",
    "cold_ms",
    "tflops",
    "kept_fraction",
    "memory_bytes",
    "roofline_fraction",
    "io_fraction",
    "prepare_ms",
    "bytes_moved",
    "gb_per_s",
    "kernel",
    "reason",
)
EXPONENT_FIELDS = ("series", "backend", "lengths", "time_exponent", "memory_exponent")


def flat_row(point: dict[str, Any]) -> dict[str, Any]:
    """One CSV / wandb-table row of a point."""
    latency = point.get("latency") or {}
    row = {"backend": point["backend"], "status": point["status"], **point["shape"]}
    row["pass"] = point["shape"]["passes"]  # the CSV keeps its v1 column name
    row.update(
        source=point.get("source"),
        median_ms=latency.get("median_ms"),
        iqr_ms=latency.get("iqr_ms"),
        cold_ms=latency.get("cold_ms"),
        tflops=point.get("tflops"),
        kept_fraction=point.get("kept_fraction"),
        memory_bytes=(point.get("memory") or {}).get("bytes"),
        roofline_fraction=point.get("roofline_fraction"),
        io_fraction=point.get("io_fraction"),
        prepare_ms=(point.get("prepare") or {}).get("median_ms"),
        bytes_moved=point.get("bytes_moved"),
        gb_per_s=_gb(point.get("bytes_per_second")),
        kernel=point.get("kernel"),
        reason=point.get("reason"),
    )
    return {name: row.get(name) for name in CSV_FIELDS}


def _gb(bytes_per_second: float | None) -> float | None:
    return None if bytes_per_second is None else bytes_per_second / 1e9


def write_files(report: dict[str, Any], out_dir: Path, plots: bool) -> list[Path]:
    """bench.json (everything), bench.csv (one row per point), exponents.csv (the fits) and
    the PNG plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "bench.json", out_dir / "bench.csv", out_dir / "exponents.csv"]
    write_atomic(written[0], json.dumps(report, indent=2, default=str).encode())
    rows = [flat_row(p) for p in report["points"]]
    write_atomic(written[1], _csv_text(rows, CSV_FIELDS).encode())
    fits = [{**r, "lengths": " ".join(map(str, r["lengths"]))} for r in report["exponents"]]
    write_atomic(written[2], _csv_text(fits, EXPONENT_FIELDS).encode())
    if plots:
        written += write_plots(report["points"], out_dir)
    return written


def _csv_text(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_plots(points: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """latency.png and memory.png: log-log against Nk, one line per backend and series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xbench.bench.analysis import describe_series

    table = series(points)
    names = sorted({p["backend"] for p in points})
    colors = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(names)}
    paths = []
    for name, label, value in (
        ("latency", "median latency (ms)", median_ms),
        ("memory", "peak memory above baseline (MiB)", lambda p: memory_bytes(p) / 2**20),
    ):
        figure, axes = plt.subplots(figsize=(7, 5))
        for style, (key, backends) in zip(itertools.cycle(LINE_STYLES), table.items()):
            suffix = f" ({describe_series(key)})" if len(table) > 1 else ""
            for backend, line in sorted(backends.items()):
                ok = [p for p in line if p["status"] == "ok"]
                if ok:
                    axes.plot(
                        [p["shape"]["nk"] for p in ok],
                        [value(p) for p in ok],
                        marker="o",
                        linestyle=style,
                        color=colors[backend],
                        label=backend + suffix,
                    )
        axes.set_xscale("log", base=2)
        axes.set_yscale("log")
        axes.set_xlabel("key length Nk (Nq fixed for decode, else in the series' ratio)")
        axes.set_ylabel(label)
        axes.set_title(f"cross-attention {name} vs length")
        axes.grid(True, which="both", alpha=0.3)
        if axes.lines:
            axes.legend(fontsize="small")
        path = out_dir / f"{name}.png"
        figure.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(figure)
        paths.append(path)
    return paths


def print_report(report: dict[str, Any], console: Console | None = None) -> None:
    """The points, the references, the fits, the crossovers and the checks, as tables."""
    console = console or Console(width=max(Console().width, 170))
    roofs = report.get("roofs") or {}
    title = (
        f"xbench bench · {report['settings']['preset']} · {report['environment']['device']}"
        f" · {report['environment']['threads']} threads"
    )
    methods = "; ".join(f"{k}: {v}" for k, v in report["memory_methods"].items())
    caption = report["flops_convention"] + (f"\nmemory: {methods}" if methods else "")
    table = Table(title=title, caption=caption)
    sources = any(p.get("source") for p in report["points"])
    decode = any(p["shape"]["passes"] == "decode" for p in report["points"])
    masked = any(p["shape"]["padded_fraction"] for p in report["points"])
    columns = ("backend", *(("source",) if sources else ()), "B", "H", "Nq", "Nk", "D")
    columns += ("dtype", "pass", *(("padded",) if masked else ()), "status", "median ms")
    columns += ("IQR ms", "cold ms", *(("prepare ms", "GB/s") if decode else ()), "TFLOP/s")
    for column in (*columns, "kept", "peak MiB", "roofline", "I/O", "kernel"):
        table.add_column(column, overflow="fold")
    for point in report["points"]:
        s, latency = point["shape"], point.get("latency") or {}
        ok = point["status"] == "ok"
        decode_cells = (
            _num((point.get("prepare") or {}).get("median_ms")),
            _num(_gb(point.get("bytes_per_second"))),
        )
        table.add_row(
            point["backend"],
            *((point["source"],) if sources else ()),
            *(str(s[k]) for k in ("batch", "heads", "nq", "nk", "head_dim", "dtype", "passes")),
            *((_num(s["padded_fraction"]),) if masked else ()),
            point["status"] if ok else f"{point['status']}: {(point.get('reason') or '')[:60]}",
            _num(latency.get("median_ms")),
            _num(latency.get("iqr_ms")),
            _num(latency.get("cold_ms")),
            *(decode_cells if decode else ()),
            _num(point.get("tflops")),
            _num(point.get("kept_fraction")),
            _num(memory_bytes(point) / 2**20) if ok else "",
            _num(point.get("roofline_fraction")),
            _num(point.get("io_fraction")),
            point.get("kernel") or "",
        )
    console.print(table)
    if roofs:
        console.print(
            f"roofs measured in this run: matmul {roofs['matmul_tflops']:.3g} TFLOP/s "
            f"({roofs['dtype']}), copy {roofs['copy_gbs']:.3g} GB/s",
            highlight=False,
        )
    load_line = machine_load_line(report.get("load") or {})
    if load_line:
        console.print(load_line, style="yellow" if "(loaded)" in load_line else None)
    if report.get("left_out_nk"):
        console.print(
            f"left out on CPU (bench.cpu_max_nk={report['settings']['cpu_max_nk']}): "
            f"Nk = {', '.join(map(str, report['left_out_nk']))}",
            highlight=False,
        )
    _print_rows(console, "task shapes (real_shapes)", report.get("tasks"), _task)
    _print_rows(console, "series stopped (scaling)", report.get("stops"), _stop)
    _print_rows(console, "bare references", report.get("references"), _reference_row)
    _print_rows(console, "scaling exponents (log-log fit in Nk)", report["exponents"], _fit)
    _print_rows(console, "crossover (efficiency) lengths", report["crossovers"], _crossover)
    _print_rows(console, "acceptance checks", report.get("checks"), _check)


def machine_load_line(load: dict[str, Any]) -> str | None:
    """``machine load: 0.4 at start, 1.2 at end on 2 usable cores`` — ``(loaded)`` first when
    either moment had more runnable work than cores (the figures read slower than the
    machine is); None when the load was not recorded (older reports, or no load average)."""
    start, end = load.get("start") or {}, load.get("end") or {}
    if start.get("load_1m") is None and end.get("load_1m") is None:
        return None
    moments = ", ".join(
        f"{m['load_1m']:.2f} at {name}"
        for name, m in (("start", start), ("end", end))
        if m.get("load_1m") is not None
    )
    cores = start.get("cores") or end.get("cores")
    loaded = "(loaded) " if start.get("contended") or end.get("contended") else ""
    return f"{loaded}machine load: {moments} on {cores} usable cores"


def _print_rows(console: Console, title: str, rows, render) -> None:
    if not rows:
        return
    table = Table(title=title)
    header, _ = render(None)
    for column in header:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*render(row)[1])
    console.print(table)


def _reference_row(row):
    header = ("reference", "kind", "Nq", "Nk", "status", "median ms", "TFLOP/s")
    if row is None:
        return header, ()
    s = row["shape"]
    status = row["status"] if row["status"] == "ok" else f"{row['status']}: {row.get('reason')}"
    values = (row["reference"], row["kind"], str(s["nq"]), str(s["nk"]), status)
    return header, (*values, _num(row.get("median_ms")), _num(row.get("tflops")))


def _task(row):
    header = ("task", "Nq (target)", "Nk (source)", "build s / error")
    if row is None:
        return header, ()
    if "error" in row:
        return header, (row["task"], "", "", row["error"])
    return header, (row["task"], str(row["nq"]), str(row["nk"]), _num(row["build_seconds"]))


def _stop(row):
    header = ("backend", "Nq", "Nk", "reason")
    if row is None:
        return header, ()
    return header, (row["backend"], str(row["nq"]), str(row["nk"]), row["reason"])


def _fit(row):
    header = ("series", "backend", "lengths", "time exponent", "memory exponent")
    if row is None:
        return header, ()
    lengths = ",".join(map(str, row["lengths"]))
    return header, (
        row["series"],
        row["backend"],
        lengths,
        _num(row["time_exponent"]),
        _num(row["memory_exponent"]),
    )


def _crossover(row):
    header = ("series", "backend", "beats", "from Nk")
    if row is None:
        return header, ()
    length = "never (in range)" if row["length"] is None else str(row["length"])
    return header, (row["series"], row["backend"], row["reference"], length)


def _check(row):
    header = ("check", "value", "required", "result")
    if row is None:
        return header, ()
    bounds = " ".join(
        f"{op} {row[key]:g}"
        for op, key in ((">=", "min"), ("<=", "max"))
        if row.get(key) is not None
    )
    verdict = "PASS" if row["passed"] else "FAIL " + row.get("detail", "")
    return header, (row["check"], _num(row["value"]), bounds, verdict)


def _num(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def log_to_wandb(report: dict[str, Any], settings: dict[str, Any], files: list[Path]) -> None:
    """One wandb run per bench: the points and fits as tables, headline figures in the
    summary, the plots as images. Offline without credentials (``logger.mode=auto``)."""
    import wandb

    from xbench.integrations.wandb import resolve_mode, run_settings, wandb_project

    out_dir = files[0].parent
    run = wandb.init(
        project=wandb_project(settings),
        entity=settings.get("entity"),
        group=settings.get("group"),
        tags=[*(settings.get("tags") or []), "bench"],
        name=out_dir.name,
        job_type="bench",
        dir=str(out_dir),
        mode=resolve_mode(settings.get("mode", "auto")),
        config={"bench": report["settings"], "backends": report["backends"]},
        settings=run_settings(),
    )
    try:
        rows = [flat_row(p) for p in report["points"]]
        run.log(
            {
                "points": wandb.Table(
                    columns=list(CSV_FIELDS), data=[list(r.values()) for r in rows]
                ),
                **{f"plots/{p.stem}": wandb.Image(str(p)) for p in files if p.suffix == ".png"},
            }
        )
        for name in ("exponents", "crossovers", "checks", "references"):
            if report.get(name):
                keys = sorted({k for row in report[name] for k in row})
                data = [[_cell(row.get(k)) for k in keys] for row in report[name]]
                run.log({name: wandb.Table(columns=keys, data=data)})
        run.summary.update({f"roofs/{k}": v for k, v in (report.get("roofs") or {}).items()})
        for row in report.get("checks") or []:
            run.summary[f"checks/{row['check']}"] = row["value"]
    finally:
        run.finish()


def _cell(value):
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
