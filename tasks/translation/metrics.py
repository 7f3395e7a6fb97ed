"""sacreBLEU BLEU and chrF (torchmetrics' implementations) on detokenised text.

Reported on sacreBLEU's 0-100 scale, the scale translation papers and the sacrebleu CLI
use, rather than torchmetrics' 0-1.
"""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.text import CHRFScore, SacreBLEUScore


class Bleu(SacreBLEUScore):
    """Corpus BLEU with sacreBLEU's defaults (13a tokenisation, case-sensitive), 0-100."""

    def __init__(self) -> None:
        super().__init__(tokenize="13a", lowercase=False)

    def compute(self):
        return super().compute() * 100.0


class ChrF(CHRFScore):
    """Corpus chrF (character 6-grams, β = 2, no word n-grams: sacreBLEU's chrF), 0-100."""

    def __init__(self) -> None:
        super().__init__(n_char_order=6, n_word_order=0, beta=2.0)

    def compute(self):
        return super().compute() * 100.0


def translation_metrics() -> MetricCollection:
    """``bleu`` (primary) and ``chrf``; ``update(predictions, references)`` takes strings
    and lists of reference strings."""
    return MetricCollection({"bleu": Bleu(), "chrf": ChrF()})
