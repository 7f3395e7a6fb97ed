"""The per-example sidecar of a run (``examples.json`` next to ``result.json``): every
test example's prediction, references and the statistics its task's primary metric adds
up (:class:`xbench.api.task.ExampleStatistics`). The leaderboard pairs two runs' sidecars
by example id to compare them on the same examples.

An example's id is its position in the test split and a digest of its references, so two
runs on different test sets cannot be paired by accident.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xbench.api.task import CORPUS_FORMULAS
from xbench.atomic import write_atomic
from xbench.jsonable import Jsonable
from xbench.records.corpus import corpus_score

EXAMPLES_FILE = "examples.json"
EXAMPLES_VERSION = 1


def example_id(index: int, references: Sequence[str]) -> str:
    """``<index>:<10 hex digits of the references' sha256>``."""
    digest = hashlib.sha256(json.dumps(list(references), ensure_ascii=False).encode())
    return f"{index}:{digest.hexdigest()[:10]}"


@dataclass(frozen=True)
class ExampleScore(Jsonable):
    """One test example: its id, the decoded prediction, its references and statistics."""

    id: str
    prediction: str
    references: list[str]
    statistics: list[float]


@dataclass
class ExampleScores(Jsonable):
    """A run's test examples in test order. ``metric`` is the task's primary metric and
    ``formula`` rebuilds it from the summed statistics (:mod:`xbench.records.corpus`);
    ``value`` is that formula over every example, which the task's own metric should match."""

    metric: str
    formula: str
    value: float | None
    examples: list[ExampleScore] = field(default_factory=list)
    version: int = EXAMPLES_VERSION

    @classmethod
    def build(
        cls,
        metric: str,
        formula: str,
        predictions: Sequence[str],
        references: Sequence[Sequence[str]],
        statistics: Sequence[Sequence[float]],
    ) -> ExampleScores:
        """The sidecar of a test split; raises ValueError when the lengths disagree."""
        if not len(predictions) == len(references) == len(statistics):
            raise ValueError(
                f"{len(predictions)} predictions, {len(references)} references and "
                f"{len(statistics)} rows of statistics: one each per test example"
            )
        rows = zip(predictions, references, statistics, strict=True)
        examples = [
            ExampleScore(example_id(i, refs), p, list(refs), [float(v) for v in row])
            for i, (p, refs, row) in enumerate(rows)
        ]
        scores = cls(metric=metric, formula=formula, value=None, examples=examples)
        scores.value = corpus_score(formula, scores.matrix()) if examples else None
        return scores

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.examples]

    def matrix(self) -> np.ndarray:
        """The statistics as an (n, k) float array."""
        return np.array([e.statistics for e in self.examples], dtype=float).reshape(
            len(self.examples), -1
        )

    def write(self, run_dir: str | Path) -> Path:
        """Write ``examples.json`` into ``run_dir`` atomically."""
        text = json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False)
        return write_atomic(Path(run_dir) / EXAMPLES_FILE, text.encode())

    @classmethod
    def load(cls, path: str | Path) -> ExampleScores:
        """Read a sidecar; ValueError for a file that is not one (or of a newer version)."""
        try:
            data = json.loads(Path(path).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"not valid JSON ({error})") from error
        version = data.get("version") if isinstance(data, dict) else None
        if isinstance(version, int) and version > EXAMPLES_VERSION:
            raise ValueError(f"version {version} is newer than this xbench reads")
        try:
            scores = cls.from_dict(data)
        except TypeError as error:
            raise ValueError(f"not a per-example sidecar ({error})") from error
        if scores.formula not in CORPUS_FORMULAS:
            known = ", ".join(CORPUS_FORMULAS)
            raise ValueError(f"formula {scores.formula!r} is not one of {known}")
        return scores


def sidecar_of(record_path: str | Path) -> Path:
    """Where the sidecar of the record at ``record_path`` lives."""
    return Path(record_path).parent / EXAMPLES_FILE
