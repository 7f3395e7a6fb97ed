"""SQuAD exact match and F1 (torchmetrics' implementation), reported as fractions."""

from __future__ import annotations

from collections.abc import Sequence

from torchmetrics import MetricCollection
from torchmetrics.text import SQuAD


class SpanMatch(SQuAD):
    """SQuAD EM/F1 on decoded strings: ``update(predictions, references)``.

    torchmetrics wants SQuAD-shaped dicts and returns percentages; xbench passes plain
    strings and reports fractions in [0, 1] like every other metric.
    """

    def update(self, preds: Sequence[str], target: Sequence[Sequence[str]]) -> None:
        ids = [str(i) for i in range(len(preds))]
        super().update(
            [{"prediction_text": p, "id": i} for p, i in zip(preds, ids, strict=True)],
            [
                {"answers": {"answer_start": [0] * len(refs), "text": list(refs)}, "id": i}
                for refs, i in zip(target, ids, strict=True)
            ],
        )

    def compute(self) -> dict:
        return {name: value / 100.0 for name, value in super().compute().items()}


def qa_metrics() -> MetricCollection:
    """``exact_match`` and ``f1`` (primary)."""
    return MetricCollection({"squad": SpanMatch()})
