"""The corpus formulas of :data:`xbench.api.task.CORPUS_FORMULAS`: a primary metric rebuilt
from the column sums of its examples' statistics, without the task's code.

BLEU and chrF go through sacreBLEU's own score-from-statistics functions (the ones its
paired bootstrap uses), so a resampled corpus is scored exactly as sacreBLEU would score it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from sacrebleu.metrics import BLEU, CHRF

from xbench.api.task import CORPUS_FORMULAS


@functools.cache
def _bleu() -> BLEU:
    return BLEU(smooth_method="none", tokenize="13a")


@functools.cache
def _chrf() -> CHRF:
    return CHRF(char_order=6, word_order=0, beta=2)


def _rows(score: Callable[[np.ndarray], float]) -> Callable[[np.ndarray, int], np.ndarray]:
    return lambda totals, count: np.array([score(row) for row in totals])


#: formula -> scores of summed statistics: (R, k) totals of R corpora of ``count`` examples
_SCORES: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "mean": lambda totals, count: totals[:, 0] / max(count, 1),
    "ratio": lambda totals, count: np.divide(
        totals[:, 0], totals[:, 1], out=np.zeros(len(totals)), where=totals[:, 1] != 0
    ),
    "bleu": _rows(lambda row: _bleu()._compute_score_from_stats(row.tolist()).score),
    "chrf": _rows(lambda row: _chrf()._compute_score_from_stats(row.tolist()).score),
}
assert set(_SCORES) == set(CORPUS_FORMULAS)


def corpus_scores(formula: str, totals: np.ndarray, count: int) -> np.ndarray:
    """The metric of each row of ``totals`` ((R, k) column sums over corpora of ``count``
    examples each) under ``formula``; a ratio over an empty denominator scores 0."""
    if formula not in _SCORES:
        raise ValueError(f"formula {formula!r} is not one of {', '.join(_SCORES)}")
    return _SCORES[formula](np.asarray(totals, dtype=float).reshape(len(totals), -1), count)


def corpus_score(formula: str, statistics: np.ndarray) -> float:
    """The metric of a whole corpus: ``statistics`` is (n, k), one row per example."""
    statistics = np.asarray(statistics, dtype=float)
    return float(corpus_scores(formula, statistics.sum(0, keepdims=True), len(statistics))[0])
