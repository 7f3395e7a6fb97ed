"""Where run records are found: every ``result.json`` under some folders, read (and
migrated) one by one so that one unreadable file never hides the others."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from xbench.records.result import RESULT_FILE, RunResult

log = logging.getLogger(__name__)
# Folders inside a run directory that never hold run records: not searched.
_NOT_RUN_DIRS = {"wandb", "artifacts", ".hydra", "lightning_logs", "checkpoints", "__pycache__"}


def find_results(roots: Iterable[str | Path]) -> Iterator[tuple[Path, RunResult]]:
    """Every readable run record under ``roots`` (files or folders), in path order.

    A record that cannot be read (a newer schema, a hand-edited or truncated file) is
    skipped with a one-line warning naming the file and why.
    """
    for root in roots:
        root = Path(root)
        paths = [root] if root.is_file() else sorted(_record_paths(root))
        for path in paths:
            try:
                yield path, RunResult.load(path)
            except (OSError, ValueError) as error:
                log.warning("skipping %s: %s", path, error)


def _record_paths(root: Path) -> Iterator[Path]:
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in _NOT_RUN_DIRS]
        if RESULT_FILE in files:
            yield Path(folder) / RESULT_FILE
