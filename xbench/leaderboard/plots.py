"""Quality-vs-latency plots per task (PNG), with the Pareto front marked; the latency is
cross-attention's train phase (forward+backward at a real training batch).

Uses matplotlib's object API with the Agg canvas: no display, no global backend switch.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from xbench.atomic import write_atomic
from xbench.leaderboard.board import TaskBoard, pareto_front


def plot_file_name(board: str) -> str:
    """``pareto_<board key>.png`` with anything unusual in the name replaced."""
    return f"pareto_{re.sub(r'[^A-Za-z0-9_.-]', '_', board)}.png"


def pareto_plot(board: TaskBoard, out_dir: Path) -> Path | None:
    """Write the task's plot into ``out_dir``; None when no row has both figures."""
    rows = [
        r
        for r in board.rows
        if r.status == "ok" and r.primary is not None and r.train_ms is not None
    ]
    if not rows:
        return None
    points = [(r.train_ms, r.primary) for r in rows]
    front = set(pareto_front(points, board.higher_is_better))
    figure = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for index, row in enumerate(rows):
        on_front = index in front
        axes.errorbar(
            row.train_ms,
            row.primary,
            yerr=row.primary_std,
            fmt="o",
            color="tab:red" if on_front else "tab:blue",
            markersize=8 if on_front else 5,
            capsize=3,
        )
        axes.annotate(
            _plain(row.label),
            (row.train_ms, row.primary),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    line = sorted(points[i] for i in front)
    axes.step(
        [x for x, _ in line],
        [y for _, y in line],
        where="post",
        color="tab:red",
        alpha=0.5,
        label="Pareto front",
    )
    axes.set_xlabel("cross-attention train phase (fwd+bwd), ms: median at a real batch")
    direction = "higher" if board.higher_is_better else "lower"
    axes.set_ylabel(f"{board.metric} ({direction} is better)")
    if not board.higher_is_better:
        axes.invert_yaxis()  # better is up in every plot
    devices = sorted({r.device for r in rows})
    axes.set_title(_plain(f"{board.title}: quality vs latency on {', '.join(devices)}"), fontsize=9)
    axes.legend(loc="best", fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png")
    return write_atomic(out_dir / plot_file_name(board.key), png.getvalue())


def _plain(text: str) -> str:
    """Text shown as is (a ``$`` would otherwise start matplotlib mathtext)."""
    return text.replace("$", r"\$")
