"""Word and character error rates (torchmetrics) on normalised transcripts."""

from __future__ import annotations

from collections.abc import Sequence

from torchmetrics import MetricCollection
from torchmetrics.text import CharErrorRate, WordErrorRate

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
