"""The leaderboard as rich console tables, one per task."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from xbench.leaderboard.board import TaskBoard, board_notes, display_columns, display_rows


def print_leaderboard(boards: list[TaskBoard], console: Console) -> None:
    """One table per task and tier, its notes below it (text shown verbatim: no rich
    markup from names or errors); a control's warning stands out in red."""
    for board in boards:
        direction = "higher" if board.higher_is_better else "lower"
        table = Table(
            title=f"{board.title}: {board.metric} ({direction} is better)", show_lines=False
        )
        for column in display_columns(board):
            table.add_column(column, overflow="fold")
        for row, cells in zip(board.rows, display_rows(board), strict=True):
            style = None if row.status == "ok" else "red"
            table.add_row(*(Text(cell) for cell in cells), style=style)
        console.print(table)
        for note in board_notes(board):
            style = "bold red" if note.startswith("control: WARNING") else None
            console.print(Text(note, style=style))
