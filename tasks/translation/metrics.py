"""sacreBLEU BLEU and chrF (torchmetrics' implementations) on detokenised text.

Reported on sacreBLEU's 0-100 scale, the scale translation papers and the sacrebleu CLI
use, rather than torchmetrics' 0-1. Per example, :data:`TRANSLATION_STATISTICS` keeps
sacreBLEU's segment statistics of the same BLEU (13a, case-sensitive, no smoothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import zip_longest

from sacrebleu.metrics import BLEU
from torchmetrics import MetricCollection
from torchmetrics.text import CHRFScore, SacreBLEUScore

from xbench.api.task import ExampleStatistics


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


def example_bleu_statistics(
    preds: Sequence[str], target: Sequence[Sequence[str]]
) -> list[list[float]]:
    """sacreBLEU's BLEU statistics of each example (lengths, n-gram matches and totals);
    references are passed as sacreBLEU's streams, None where an example has fewer."""
    streams = [list(stream) for stream in zip_longest(*target, fillvalue=None)]
    bleu = BLEU(tokenize="13a", lowercase=False, smooth_method="none")
    return [[float(v) for v in row] for row in bleu._extract_corpus_statistics(preds, streams)]


#: ``bleu`` per example: sacreBLEU's segment statistics, summed then scored.
TRANSLATION_STATISTICS = ExampleStatistics(formula="bleu", compute=example_bleu_statistics)
