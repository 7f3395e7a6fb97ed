"""Publishing the leaderboard of the run records under some folders: the console table,
``leaderboard.md``/``.csv``/``.html`` with the Pareto plots, and optionally a wandb run.

Used at the end of every sweep (:mod:`xbench.leaderboard.sweep_callback`) and by
``xbench leaderboard``.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
from pathlib import Path
from typing import Any

from rich.console import Console

from xbench.api.errors import UserError
from xbench.atomic import write_atomic
from xbench.config.compose import default_output_root
from xbench.leaderboard.board import (
    BASELINE,
    TaskBoard,
    board_notes,
    build_leaderboard,
    data_records,
    display_columns,
    display_rows,
    ratio_note,
)
from xbench.leaderboard.console import print_leaderboard
from xbench.leaderboard.html import render_html
from xbench.leaderboard.plots import pareto_plot
from xbench.records.store import find_results

log = logging.getLogger(__name__)
REPORT_FILES = ("leaderboard.md", "leaderboard.csv", "leaderboard.html")


def publish(
    roots: list[Path],
    out_dir: Path,
    wandb_settings: dict[str, Any] | None = None,
    group: str | None = None,
    console: Console | None = None,
    reference: str | None = None,
) -> list[TaskBoard]:
    """Build the leaderboard of every record under ``roots`` and publish it everywhere;
    differences are taken against the ``reference`` backend (default: flash). Raises
    UserError when a chosen reference is a backend no record under ``roots`` ran."""
    console = console or Console(width=max(Console().width, 220))
    boards = build_leaderboard(find_results(roots), reference or BASELINE)
    if not boards:
        console.print(f"no run records under {', '.join(map(str, roots))}", highlight=False)
        return []
    backends = sorted({row.backend for board in boards for row in board.rows})
    if reference is not None and reference not in backends:
        raise UserError(
            f"reference {reference!r}: no run of that backend under "
            f"{', '.join(map(str, roots))}; the backends there: {', '.join(backends)}"
        )
    print_leaderboard(boards, console)
    plots = write_report(boards, out_dir, [str(r) for r in roots])
    console.print(f"leaderboard: {out_dir / 'leaderboard.html'} (also .md, .csv)", highlight=False)
    if wandb_settings is not None:
        from xbench.leaderboard.wandb_tables import log_leaderboard

        try:
            log_leaderboard(boards, plots, wandb_settings, out_dir, group or out_dir.name)
        except Exception as error:  # wandb never costs the local report
            log.warning("the wandb leaderboard run failed: %s", error)
    return boards


def write_report(boards: list[TaskBoard], out_dir: Path, sources: list[str]) -> dict[str, Path]:
    """Write the plots and the three report files into ``out_dir``; returns the plots."""
    plots = {b.key: p for b in boards if (p := pareto_plot(b, out_dir)) is not None}
    md, table, page = (out_dir / name for name in REPORT_FILES)
    write_atomic(md, markdown(boards, plots).encode())
    write_atomic(table, csv_text(boards).encode())
    write_atomic(page, render_html(boards, plots, sources).encode())
    return plots


def markdown(boards: list[TaskBoard], plots: dict[str, Path]) -> str:
    lines = ["# xbench leaderboard", ""]
    for board in boards:
        direction = "higher" if board.higher_is_better else "lower"
        lines += [
            f"## {board.title}",
            "",
            f"Primary metric `{board.metric}` ({direction} is better), mean ± std over seeds; "
            f"{ratio_note(board)}.",
            "",
            _md_row(display_columns(board)),
            _md_row(["---"] * len(display_columns(board))),
            *(_md_row(cells) for cells in display_rows(board)),
            "",
        ]
        lines += [*(f"- {note}" for note in board_notes(board)), ""]
        if board.key in plots:
            lines += [f"![{board.title}: quality vs latency]({plots[board.key].name})", ""]
    return "\n".join(lines)


def _md_row(cells: list[str]) -> str:
    escaped = (c.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ") for c in cells)
    return "| " + " | ".join(escaped) + " |"


def csv_text(boards: list[TaskBoard]) -> str:
    """All tasks in one CSV, raw numbers (blank: not measured)."""
    records = [record for board in boards for record in data_records(board)]
    buffer = io.StringIO()
    if records:
        writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return buffer.getvalue()


def leaderboard_command(args: list[str]) -> int:
    """``xbench leaderboard [DIR ...] [--out DIR] [--reference BACKEND] [--wandb]``."""
    parser = argparse.ArgumentParser(
        prog="xbench leaderboard",
        description="Leaderboard of the run records (result.json) found under DIRs.",
    )
    parser.add_argument("dirs", nargs="*", type=Path, help="default: the output root")
    parser.add_argument("--out", type=Path, help="report folder (default: the first DIR)")
    parser.add_argument(
        "--reference",
        metavar="BACKEND",
        help=f"the backend each row's paired difference is taken against (default: {BASELINE})",
    )
    parser.add_argument("--wandb", action="store_true", help="also log a wandb leaderboard run")
    parser.add_argument("--project", default="xbench", help="wandb project (with --wandb)")
    parsed = parser.parse_args(args)
    dirs = parsed.dirs or [default_output_root()]
    missing = [str(d) for d in dirs if not d.exists()]
    if missing:
        raise UserError(f"no such folder: {', '.join(missing)}")
    out_dir = parsed.out or (dirs[0] if dirs[0].is_dir() else dirs[0].parent)
    settings = {"project": parsed.project, "mode": "auto"} if parsed.wandb else None
    boards = publish(dirs, out_dir, wandb_settings=settings, reference=parsed.reference)
    return 0 if boards else 1
