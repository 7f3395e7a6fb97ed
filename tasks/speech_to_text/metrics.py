"""Word and character error rates (torchmetrics) on normalised transcripts; per example,
:data:`SPEECH_STATISTICS` keeps the word errors and reference words WER sums."""

from __future__ import annotations

from collections.abc import Sequence

from torchmetrics import MetricCollection
from torchmetrics.text import CharErrorRate, WordErrorRate

from xbench.api.task import ExampleStatistics
from xbench_tasks.speech_to_text.text import normalise


class _OnNormalisedText:
    """``update(predictions, references)`` with xbench's shapes: strings and lists of
    reference strings (the first one counts), both normalised first."""

    def update(self, preds: Sequence[str], target: Sequence[Sequence[str]]) -> None:
        super().update([normalise(p) for p in preds], [normalise(refs[0]) for refs in target])


class NormalisedWER(_OnNormalisedText, WordErrorRate):
    """Word error rate: (substitutions + deletions + insertions) / reference words."""


class NormalisedCER(_OnNormalisedText, CharErrorRate):
    """Character error rate, the same edit distance over characters."""


def speech_metrics() -> MetricCollection:
    """``wer`` (primary, lower is better) and ``cer``."""
    return MetricCollection({"wer": NormalisedWER(), "cer": NormalisedCER()})


def example_word_errors(preds: Sequence[str], target: Sequence[Sequence[str]]) -> list[list[float]]:
    """(word errors, reference words) of each example, counted by :class:`NormalisedWER`
    itself: their sums' ratio is the corpus ``wer``."""
    wer, rows = NormalisedWER(), []
    for p, refs in zip(preds, target, strict=True):
        wer.update([p], [refs])
        rows.append([float(wer.errors), float(wer.total)])
        wer.reset()
    return rows


#: ``wer`` per example: Σ errors / Σ reference words.
SPEECH_STATISTICS = ExampleStatistics(formula="ratio", compute=example_word_errors)
