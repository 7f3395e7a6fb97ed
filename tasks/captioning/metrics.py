"""Caption metrics: CIDEr-D (primary), BLEU-4 and, on embedded scenes, attribute accuracy.

CIDEr-D is pycocoevalcap's ``Cider`` — the coco-caption scorer, which is CIDEr-D: tf-idf
n-gram vectors (n = 1..4, document frequencies over the evaluated set's references),
hypothesis counts clipped by the reference's, a Gaussian length penalty (σ = 6) and a
factor of 10. BLEU-4 is torchmetrics' corpus BLEU against all references. Both see the
same tokens: lower-cased runs of word characters (:func:`caption_words`), standing in for
coco-caption's Java PTB tokenizer, which drops punctuation the same way. Corpus CIDEr-D is
the mean of the images' scores, under document frequencies of the whole evaluated set;
:data:`CAPTION_STATISTICS` keeps those per-image scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pycocoevalcap.cider.cider import Cider
from torchmetrics import Metric, MetricCollection
from torchmetrics.text import BLEUScore

from xbench.api.task import ExampleStatistics
from xbench_tasks.captioning.captions import caption_words, facts_of, matches, parse


class CaptionCorpus(Metric):
    """Collects predictions and their references; subclasses score the whole corpus
    (CIDEr's document frequencies need every image of the evaluated set at once)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("predictions", default=[], dist_reduce_fx=None)
        self.add_state("references", default=[], dist_reduce_fx=None)

    def update(self, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> None:
        self.predictions.extend(predictions)
        self.references.extend(list(refs) for refs in references)


class CiderD(CaptionCorpus):
    """CIDEr-D of the corpus (pycocoevalcap); 0 for an empty corpus."""

    higher_is_better = True

    def compute(self) -> torch.Tensor:
        if not self.predictions:
            return torch.tensor(0.0)
        score, _ = cider_scores(self.predictions, self.references)
        return torch.tensor(float(score))


def cider_scores(
    predictions: Sequence[str], references: Sequence[Sequence[str]]
) -> tuple[float, list[float]]:
    """pycocoevalcap's CIDEr-D of the corpus and of each image (the corpus figure is their
    mean; document frequencies come from every image's references)."""
    hypotheses = {i: [caption_words(p)] for i, p in enumerate(predictions)}
    gts = {i: [caption_words(r) for r in refs] for i, refs in enumerate(references)}
    score, scores = Cider().compute_score(gts, hypotheses)
    return float(score), [float(s) for s in scores]


def example_cider(
    predictions: Sequence[str], references: Sequence[Sequence[str]]
) -> list[list[float]]:
    """Each image's CIDEr-D under the whole test set's document frequencies."""
    return [[score] for score in cider_scores(predictions, references)[1]]


#: ``cider`` per image: the corpus figure is their mean.
CAPTION_STATISTICS = ExampleStatistics(formula="mean", compute=example_cider)


class Bleu4(BLEUScore):
    """torchmetrics' corpus BLEU-4 on :func:`caption_words` tokens."""

    def __init__(self) -> None:
        super().__init__(n_gram=4)

    def update(self, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> None:
        super().update(
            [caption_words(p) for p in predictions],
            [[caption_words(r) for r in refs] for refs in references],
        )


class SceneAccuracy(CaptionCorpus):
    """How often what the captions say is true of the scene the references describe.

    ``attributes``: of all object mentions ("a small red circle", "a blue square"), the
    fraction that fit an object of the scene in every attribute they name.
    ``relations``: of all relation statements ("… left of …"), the fraction that hold
    between objects of the scene fitting both mentions. Scene facts come from the
    references (see :func:`~xbench_tasks.captioning.captions.facts_of`), so this needs
    embedded data, whose references state every object and every pairwise relation.
    A corpus without any mention or statement scores 0.
    """

    higher_is_better = True

    def compute(self) -> dict[str, torch.Tensor]:
        right = {"attributes": 0, "relations": 0}
        said = {"attributes": 0, "relations": 0}
        for prediction, refs in zip(self.predictions, self.references, strict=True):
            truth, claim = facts_of(refs), parse(prediction)
            for mention in claim.mentions:
                said["attributes"] += 1
                right["attributes"] += any(matches(mention, o) for o in truth.mentions)
            for a, rel, b in claim.relations:
                said["relations"] += 1
                right["relations"] += any(
                    matches(a, x) and matches(b, y) for x, r, y in truth.relations if r == rel
                )
        return {k: torch.tensor(right[k] / said[k] if said[k] else 0.0) for k in right}


def caption_metrics(scene_facts: bool) -> MetricCollection:
    """``cider`` (primary), ``bleu4`` and, with ``scene_facts``, ``attributes`` and
    ``relations``."""
    metrics: dict[str, Metric] = {"cider": CiderD(), "bleu4": Bleu4()}
    if scene_facts:
        metrics["scene"] = SceneAccuracy()
    # Compute groups compare states as tensors; these hold strings.
    return MetricCollection(metrics, compute_groups=False)
