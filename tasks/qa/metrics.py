"""SQuAD exact match and F1 (torchmetrics' implementation), reported as fractions; F1 is
the mean of each example's F1, which :data:`QA_STATISTICS` keeps per example."""

from __future__ import annotations

from collections.abc import Sequence

from torchmetrics import MetricCollection
from torchmetrics.functional.text import squad
from torchmetrics.text import SQuAD

from xbench.api.task import ExampleStatistics


def _squad_shaped(preds: Sequence[str], target: Sequence[Sequence[str]]) -> tuple[list, list]:
    """Plain strings as the prediction and answer dicts torchmetrics' SQuAD takes."""
    ids = [str(i) for i in range(len(preds))]
    return (
        [{"prediction_text": p, "id": i} for p, i in zip(preds, ids, strict=True)],
        [
            {"answers": {"answer_start": [0] * len(refs), "text": list(refs)}, "id": i}
            for refs, i in zip(target, ids, strict=True)
        ],
    )


class SpanMatch(SQuAD):
    """SQuAD EM/F1 on decoded strings: ``update(predictions, references)``.

    torchmetrics wants SQuAD-shaped dicts and returns percentages; xbench passes plain
    strings and reports fractions in [0, 1] like every other metric.
    """

    def update(self, preds: Sequence[str], target: Sequence[Sequence[str]]) -> None:
        super().update(*_squad_shaped(preds, target))

    def compute(self) -> dict:
        return {name: value / 100.0 for name, value in super().compute().items()}


def qa_metrics() -> MetricCollection:
    """``exact_match`` and ``f1`` (primary)."""
    return MetricCollection({"squad": SpanMatch()})


def example_f1(preds: Sequence[str], target: Sequence[Sequence[str]]) -> list[list[float]]:
    """Each example's SQuAD F1 as a fraction (their mean is the corpus ``f1``)."""
    return [
        [float(squad(*_squad_shaped([p], [refs]))["f1"]) / 100.0]
        for p, refs in zip(preds, target, strict=True)
    ]


#: ``f1`` per example: the corpus figure is their mean.
QA_STATISTICS = ExampleStatistics(formula="mean", compute=example_f1)
