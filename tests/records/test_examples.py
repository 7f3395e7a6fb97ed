"""The per-example sidecar and the corpus formulas that rebuild a primary metric from it."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from sacrebleu.metrics import BLEU, CHRF

from xbench.records.corpus import corpus_score, corpus_scores
from xbench.records.examples import EXAMPLES_FILE, ExampleScores, example_id
from xbench_tasks.captioning.metrics import CAPTION_STATISTICS, caption_metrics
from xbench_tasks.qa.metrics import QA_STATISTICS, qa_metrics
from xbench_tasks.speech_to_text.metrics import SPEECH_STATISTICS, speech_metrics
from xbench_tasks.translation.metrics import TRANSLATION_STATISTICS, translation_metrics

WORDS = [
    "the",
    "a",
    "red",
    "blue",
    "circle",
    "square",
    "left",
    "of",
    "small",
    "big",
    "dog",
    "runs",
    "fast",
]


def corpus(n: int = 60, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """Predictions that drop and add words of their one reference."""
    rng = random.Random(seed)
    references = [[" ".join(rng.choices(WORDS, k=rng.randint(2, 10)))] for _ in range(n)]
    predictions = [
        " ".join(w for w in refs[0].split() if rng.random() > 0.3) + rng.choice(["", " dog"])
        for refs in references
    ]
    return predictions, references


@pytest.mark.parametrize(
    ("statistics", "metrics", "name"),
    [
        (QA_STATISTICS, qa_metrics, "f1"),
        (TRANSLATION_STATISTICS, translation_metrics, "bleu"),
        (SPEECH_STATISTICS, speech_metrics, "wer"),
        (CAPTION_STATISTICS, lambda: caption_metrics(scene_facts=False), "cider"),
    ],
)
def test_each_built_in_task_metric_is_rebuilt_from_its_per_example_statistics(
    statistics, metrics, name
):
    predictions, references = corpus()
    collection = metrics()
    collection.update(predictions, references)
    expected = float(collection.compute()[name])
    rows = statistics.compute(predictions, references)
    assert len(rows) == len(predictions)
    assert corpus_score(statistics.formula, rows) == pytest.approx(expected, rel=1e-5)


def test_wer_statistics_are_errors_and_reference_words():
    rows = SPEECH_STATISTICS.compute(["a b", "x y z"], [["a c d"], ["x y z"]])
    assert rows == [[2.0, 3.0], [0.0, 3.0]]
    assert corpus_score("ratio", rows) == pytest.approx(2 / 6)


@pytest.mark.parametrize(
    ("formula", "metric"),
    [
        ("bleu", BLEU(smooth_method="none", tokenize="13a")),
        ("chrf", CHRF(char_order=6, word_order=0, beta=2)),
    ],
)
def test_bleu_and_chrf_from_statistics_equal_sacrebleus_corpus_score(formula, metric):
    for seed in range(3):
        predictions, references = corpus(seed=seed)
        streams = [[refs[0] for refs in references]]
        rows = metric._extract_corpus_statistics(predictions, streams)
        expected = metric.corpus_score(predictions, streams).score
        assert corpus_score(formula, rows) == pytest.approx(expected, abs=1e-9)
        assert 0 < expected < 100


def test_resampled_totals_are_scored_row_by_row():
    totals = np.array([[3.0, 4.0], [1.0, 0.0]])
    assert corpus_scores("ratio", totals, 5).tolist() == [0.75, 0.0], "empty denominator: 0"
    assert corpus_scores("mean", totals, 2).tolist() == [1.5, 0.5]
    with pytest.raises(ValueError, match="'median' is not one of mean, ratio, bleu, chrf"):
        corpus_scores("median", totals, 2)


def test_the_sidecar_round_trips_with_ids_from_position_and_references(tmp_path):
    predictions, references = corpus(n=5)
    rows = QA_STATISTICS.compute(predictions, references)
    scores = ExampleScores.build("f1", "mean", predictions, references, rows)
    path = scores.write(tmp_path)
    assert path == tmp_path / EXAMPLES_FILE
    loaded = ExampleScores.load(path)
    assert loaded == scores
    assert loaded.value == pytest.approx(np.mean([r[0] for r in rows]))
    assert loaded.ids[0] == example_id(0, references[0]) and loaded.ids[0].startswith("0:")
    assert example_id(0, ["other"]) != loaded.ids[0], "other references, another id"
    assert loaded.examples[2].prediction == predictions[2]
    assert loaded.matrix().shape == (5, 1)


def test_a_sidecar_of_mismatched_lengths_is_refused():
    with pytest.raises(ValueError, match="2 predictions, 2 references and 1 rows"):
        ExampleScores.build("f1", "mean", ["a", "b"], [["a"], ["b"]], [[1.0]])


def test_an_unreadable_or_newer_sidecar_is_a_value_error(tmp_path):
    scores = ExampleScores.build("f1", "mean", ["a"], [["a"]], [[1.0]])
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(scores.to_dict() | {"version": 9}))
    with pytest.raises(ValueError, match="version 9 is newer"):
        ExampleScores.load(newer)
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"metric": "f1"}))
    with pytest.raises(ValueError, match="not a per-example sidecar"):
        ExampleScores.load(foreign)
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps(scores.to_dict() | {"formula": "median"}))
    with pytest.raises(ValueError, match="formula 'median' is not one of mean, ratio, bleu"):
        ExampleScores.load(unknown)
