"""Paired bootstrap of the difference between two rows on the same test examples.

Both rows' per-example sidecars (:mod:`xbench.records.examples`) are aligned by example
id; each resample draws example indices with replacement, the same indices for both rows
and every seed, and recomputes the primary metric from the summed statistics
(:mod:`xbench.records.corpus`): corpus metrics such as BLEU are resampled by example, as
sacreBLEU's paired bootstrap does. With several seeds a row's figure is the mean over the
seeds both rows have. The interval is the percentile interval of the resampled
differences; the generator is seeded, so a board is the same every time it is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from xbench.records.corpus import corpus_score, corpus_scores
from xbench.records.examples import ExampleScores

RESAMPLES = 1000
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0


class NotPaired(ValueError):
    """Two rows that cannot be compared example by example; the message says why."""


@dataclass(frozen=True)
class PairedDifference:
    """A row's primary metric minus the reference row's on the same test examples
    (``delta``, in the metric's units, averaged over ``seeds``) and its bootstrap interval
    ``[low, high]`` at :data:`CONFIDENCE`, over ``examples`` test examples."""

    delta: float
    low: float
    high: float
    seeds: tuple[int, ...]
    examples: int

    @property
    def resolved(self) -> bool:
        """The interval excludes zero: the rows differ beyond resampling noise."""
        return self.low > 0 or self.high < 0


def paired_difference(
    system: Mapping[int, ExampleScores],
    reference: Mapping[int, ExampleScores],
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> PairedDifference:
    """``system`` minus ``reference`` (sidecars by run seed) with a paired bootstrap
    interval. Raises :class:`NotPaired` when they share no seed, score different metrics
    or were tested on different examples."""
    seeds = sorted(set(system) & set(reference))
    if not seeds:
        raise NotPaired(f"no seed in common (seeds {_list(system)} against {_list(reference)})")
    sidecars = [system[s] for s in seeds] + [reference[s] for s in seeds]
    formulas = {(s.metric, s.formula) for s in sidecars}
    if len(formulas) > 1:
        raise NotPaired(f"different per-example metrics: {', '.join(sorted(map(str, formulas)))}")
    ((_, formula),) = formulas
    order = reference[seeds[0]].ids
    for scores in sidecars:
        _check_same_examples(scores.ids, order)
    if not order:
        raise NotPaired("no test examples")
    aligned = [_aligned(scores, order) for scores in sidecars]
    n = len(order)
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples)
    resampled = [corpus_scores(formula, counts @ stats, n) for stats in aligned]
    full = [corpus_score(formula, stats) for stats in aligned]
    k = len(seeds)
    diffs = np.mean(resampled[:k], axis=0) - np.mean(resampled[k:], axis=0)
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(diffs, [tail, 100 - tail])
    delta = float(np.mean(full[:k]) - np.mean(full[k:]))
    return PairedDifference(delta, float(low), float(high), tuple(seeds), n)


def _check_same_examples(ids: list[str], order: list[str]) -> None:
    if len(ids) == len(order) and set(ids) == set(order):
        return
    shared = len(set(ids) & set(order))
    raise NotPaired(
        f"different test examples ({len(ids)} against {len(order)}, {shared} shared by id)"
    )


def _aligned(scores: ExampleScores, order: list[str]) -> np.ndarray:
    """The statistics in ``order`` of example ids."""
    position = {example_id: i for i, example_id in enumerate(scores.ids)}
    return scores.matrix()[[position[i] for i in order]]


def _list(sidecars: Mapping[int, ExampleScores]) -> str:
    return ", ".join(map(str, sorted(sidecars))) or "none"
