"""Swap-in rows show the weights' own quality beside the swapped-in one, and compare only
with rows of the same trained weights."""

from __future__ import annotations

from helpers.records import found, record

from xbench.leaderboard.board import build_leaderboard, data_records, display_columns, display_rows
from xbench.records.result import Quality, SwapIn


def swapped(backend: str, primary: float, trained: float, steps: int = 0):
    result = record(backend, primary=primary, settings={"eval": {"finetune_steps": steps}})
    result.swap = SwapIn(
        trained_with="flash",
        evaluated_with=backend,
        finetune_steps=steps,
        trained_quality=Quality(primary_metric="f1", primary=trained),
    )
    return result


def test_swap_rows_show_trained_and_swapped_quality_side_by_side():
    (board,) = build_leaderboard(
        found(
            swapped("flash", 0.9, 0.9),
            swapped("uniform", 0.2, 0.9),
            swapped("uniform", 0.5, 0.9, steps=100),
        )
    )

    columns = display_columns(board)
    rows = {r[1]: r for r in display_rows(board)}
    trained_at = columns.index("f1 as trained")
    assert columns[trained_at - 1] == "trained with"
    uniform = next(r for label, r in rows.items() if "uniform" in label and "=0" in label)
    assert uniform[trained_at - 1] == "flash" and uniform[trained_at] == "0.9000"
    assert uniform[columns.index("f1 ↑")] == "0.2000"
    csv_rows = {r["backend"]: r for r in data_records(board)}
    assert {r["trained_primary"] for r in csv_rows.values()} == {0.9}
    tuned = next(r for label, r in csv_rows.items() if "=100" in label)
    assert tuned["flash_row"] is None, "no flash row shares the fine-tuned weights"


def test_boards_without_swaps_keep_their_columns():
    (board,) = build_leaderboard(found(record("flash"), record("uniform", primary=0.1)))

    assert "trained with" not in display_columns(board)
    assert all(len(r) == len(display_columns(board)) for r in display_rows(board))
