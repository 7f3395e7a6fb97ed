"""A self-contained ``leaderboard.html``: inline CSS, plots as ``data:`` URIs, no script and
no network. Every piece of text passes through :func:`html.escape` in :func:`_text`, so
names, descriptions, options and error messages render as text, never as markup."""

from __future__ import annotations

import base64
import datetime as dt
import html
from pathlib import Path

from xbench.leaderboard.board import (
    BASELINE,
    TaskBoard,
    board_notes,
    display_columns,
    display_rows,
    ratio_note,
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr.failed td { background: #fff0f0; }
td.reason { max-width: 40em; white-space: pre-wrap; }
li.warning { color: #b00; font-weight: bold; }
img { max-width: 100%; border: 1px solid #ddd; }
"""


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_html(boards: list[TaskBoard], plots: dict[str, Path], sources: list[str]) -> str:
    """The page: one section per task (table, then its plot), then the backends' descriptions."""
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>xbench leaderboard</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>xbench leaderboard</h1>",
        f"<p>Built {_text(created)} from run records under: "
        f"{', '.join(f'<code>{_text(s)}</code>' for s in sources)}. "
        f"Quality is the mean ± standard deviation over seeds; ratios are relative to "
        f"the <code>{_text(BASELINE)}</code> row of the same configuration and device "
        f"(blank: none, or not measured there).</p>",
    ]
    for board in boards:
        parts += _section(board, plots.get(board.key))
    parts += _descriptions(boards)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _section(board: TaskBoard, plot: Path | None) -> list[str]:
    direction = "higher" if board.higher_is_better else "lower"
    baseline = _text(ratio_note(board))
    parts = [
        f"<h2>{_text(board.title)}</h2>",
        f"<p>primary metric <code>{_text(board.metric)}</code> ({direction} is better); "
        f"{baseline}</p>",
        "<table><thead><tr>",
        "".join(f"<th>{_text(c)}</th>" for c in display_columns(board)),
        "</tr></thead><tbody>",
    ]
    for row, cells in zip(board.rows, display_rows(board), strict=True):
        css = "" if row.status == "ok" else ' class="failed"'
        tds = [f"<td>{_text(c)}</td>" for c in cells[:-1]]
        tds.append(f'<td class="reason">{_text(cells[-1])}</td>')
        parts.append(f"<tr{css}>{''.join(tds)}</tr>")
    parts.append("</tbody></table>")
    parts.append("<ul>")
    for note in board_notes(board):
        css = ' class="warning"' if note.startswith("control: WARNING") else ""
        parts.append(f"<li{css}>{_text(note)}</li>")
    parts.append("</ul>")
    if plot is not None:
        data = base64.b64encode(plot.read_bytes()).decode("ascii")
        alt = f"{board.title}: {board.metric} vs x-attn train-phase ms, Pareto front marked"
        parts.append(f'<img src="data:image/png;base64,{data}" alt="{_text(alt)}">')
    return parts


def _descriptions(boards: list[TaskBoard]) -> list[str]:
    described = {}
    for board in boards:
        described |= board.descriptions
    if not described:
        return []
    rows = "".join(
        f"<tr><td>{_text(name)}</td><td>{_text(text)}</td></tr>"
        for name, text in sorted(described.items())
    )
    return [
        "<h2>Backends</h2>",
        f"<table><thead><tr><th>backend</th><th>description</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>",
    ]
