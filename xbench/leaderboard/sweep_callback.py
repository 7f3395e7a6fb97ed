"""The Hydra callback that ends every sweep with its leaderboard (configs/xbench.yaml,
``hydra.callbacks.leaderboard``) and a last line counting the cells' statuses. It runs in
the launching process after the last cell, whatever launcher ran the cells, and reads only
what the cells left in their folders: a run record, or a note of a user error."""

from __future__ import annotations

import sys
from collections import Counter
from contextlib import suppress
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from xbench.api.errors import UserError
from xbench.records.result import RESULT_FILE, RunResult

USER_ERROR_FILE = "user_error.txt"  # a cell stopped by a user error (it has no record)
USER_ERROR, NO_RECORD = "user error", "no record"
_last_counts: Counter[str] | None = None


class LeaderboardCallback(Callback):
    """``reference``: the backend each row's paired difference is taken against
    (``hydra.callbacks.leaderboard.reference=naive``; None: the leaderboard's default)."""

    def __init__(self, reference: str | None = None) -> None:
        self.reference = reference

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from xbench.integrations.wandb import sweep_group, wandb_enabled
        from xbench.leaderboard.publish import publish

        global _last_counts
        sweep_dir = Path(config.hydra.sweep.dir)
        settings = OmegaConf.to_container(config.logger, resolve=True) if "logger" in config else {}
        try:
            publish(
                [sweep_dir],
                sweep_dir,
                wandb_settings=settings if wandb_enabled(settings) else None,
                group=sweep_group(settings, sweep_dir),
                reference=self.reference,
            )
        except UserError as error:  # the cells' records are safe; say why there is no board
            print(f"xbench: error: {error}", file=sys.stderr, flush=True)
        _last_counts = cell_statuses(sweep_dir)
        print(status_line(_last_counts), flush=True)


def note_user_error(cell_dir: Path, message: str) -> None:
    """Leave the user error of a sweep cell in its folder, for the sweep's count."""
    with suppress(OSError):  # if not, the cell counts as having no record: still not `ok`
        (cell_dir / USER_ERROR_FILE).write_text(message + "\n")


def cell_statuses(sweep_dir: Path) -> Counter[str]:
    """Each cell's status: its record's, ``user error``, or ``no record`` (the record could
    not be written, or the cell died). A cell is a folder Hydra made for a job."""
    counts: Counter[str] = Counter()
    for cell in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
        if (cell / RESULT_FILE).is_file():
            try:
                counts[RunResult.load(cell / RESULT_FILE).status] += 1
            except (OSError, ValueError, TypeError, KeyError):  # unreadable: as if none
                counts[NO_RECORD] += 1
        elif (cell / USER_ERROR_FILE).is_file():
            counts[USER_ERROR] += 1
        elif (cell / ".hydra").is_dir():
            counts[NO_RECORD] += 1
    return counts


def status_line(counts: Counter[str]) -> str:
    """``sweep: 3 cells — 2 ok, 1 failed`` (``ok`` first, then the most frequent)."""
    total = sum(counts.values())
    order = sorted(counts, key=lambda status: (status != "ok", -counts[status], status))
    parts = ", ".join(f"{counts[status]} {status}" for status in order) or "no cells"
    return f"sweep: {total} cell{'s' if total != 1 else ''} — {parts}"


def sweep_exit_code(counts: Counter[str] | None = None) -> int:
    """0 when every cell is ``ok``; 2 when a cell stopped on a user error; else 1.
    Without counts, those of the last sweep this process finished, once (0 if none was)."""
    global _last_counts
    if counts is None:
        counts, _last_counts = _last_counts, None
    if not counts or set(counts) == {"ok"}:
        return 0
    return 2 if USER_ERROR in counts else 1
