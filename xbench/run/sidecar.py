"""The per-example sidecar of a run (``examples.json``): every test example's prediction,
references and the statistics its primary metric adds up, for the leaderboard's paired
intervals. Shared by xbench's own model and a Hugging Face model under test."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from xbench.api.task import Task
from xbench.records.examples import ExampleScores

log = logging.getLogger(__name__)


def write_examples(
    task: Task,
    predictions: list[str],
    references: list[list[str]],
    primary: float | None,
    run_dir: Path,
    processes: int = 1,
) -> str | None:
    """Write the per-example sidecar when the task declares its statistics; its file name.
    With several processes each holds only its share of the test split: none is written.
    Statistics that do not fit (a row count off, a NaN) cost the sidecar, not the run."""
    statistics = task.example_statistics
    if statistics is None or processes > 1 or not predictions:
        return None
    rows = statistics.compute(predictions, references)
    try:
        scores = ExampleScores.build(
            task.primary_metric, statistics.formula, predictions, references, rows
        )
        path = scores.write(run_dir)
    except ValueError as error:
        log.warning("no per-example sidecar: the task's statistics do not fit (%s)", error)
        return None
    if primary is not None and not math.isclose(scores.value, primary, rel_tol=1e-4, abs_tol=1e-6):
        log.warning(
            "the task's per-example statistics give %s = %.6g (formula %s), its metric %.6g: "
            "the leaderboard's intervals for it are off",
            task.primary_metric,
            scores.value,
            statistics.formula,
            primary,
        )
    return path.name
