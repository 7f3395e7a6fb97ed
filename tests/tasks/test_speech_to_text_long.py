"""Long speech: utterances joined into examples, the length curriculum, truncation warnings."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from helpers import composed_config

from xbench.api.errors import UserError
from xbench.registry import get_registry
from xbench.run.plan import plan_run
from xbench_tasks.speech_to_text import (
    PILOT_BANDS,
    PILOT_LEVEL,
    SpeechDataOptions,
    SpeechOptions,
    build_speech,
    drawn,
    joined,
)
from xbench_tasks.speech_to_text.corpus import CorpusSpec, load_corpus

CURRICULUM = SpeechDataOptions(
    seed=5,
    train_size=4,
    val_size=1,
    test_size=2,
    words_min=2,
    words_max=3,
    utterances_per_example=3,
    train_utterances_per_example=2,
)


def _utterances() -> dict:
    """The corpus the curriculum joins: utterances per split = examples × per example."""
    spec = CorpusSpec(seed=5, sizes=(8, 3, 6), words_min=2, words_max=3, snr_db=20.0, n_mels=20)
    return load_corpus(spec)[0]


def test_examples_join_consecutive_utterances_and_training_ones_are_shorter():
    task = build_speech(SpeechOptions(data=CURRICULUM, n_mels=20))
    assert task.data_info["sizes"] == {"train": 4, "val": 1, "test": 2}
    assert task.data_info["utterances_per_example"] == {"train": 2, "val": 3, "test": 3}
    utterances = _utterances()
    for split, per in (("train", 2), ("val", 3), ("test", 3)):
        items = task.datamodule.splits[split].items
        for i, (features, _, text, *_) in enumerate(items):
            group = utterances[split][i * per : (i + 1) * per]
            assert text == " ".join(u[1] for u in group)
            expected = np.concatenate([u[0] for u in group]).astype(np.float32)
            assert np.array_equal(features.numpy(), expected)
    assert task.data_warnings == []


def test_a_cap_that_cuts_transcripts_is_a_warning_with_the_count():
    task = build_speech(SpeechOptions(data=CURRICULUM, n_mels=20, max_target_tokens=4))
    words = [len(item[2].split()) for item in task.datamodule.splits["train"].items]
    cut = sum(n - 4 > 0.1 * n for n in words)
    expected = [
        "task.max_target_tokens=4 cut more than 10% off 1 of 1 val transcripts (100%)",
        "task.max_target_tokens=4 cut more than 10% off 2 of 2 test transcripts (100%)",
    ]
    if cut:
        expected.insert(
            0,
            f"task.max_target_tokens=4 cut more than 10% off {cut} of 4 train transcripts "
            f"({cut / 4:.0%})",
        )
    assert task.data_warnings == expected


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("task.data.utterances_per_example=0", "utterances_per_example"),
        ("task.data.train_utterances_per_example=-1", "train_utterances_per_example"),
        ("task.data.train_lengths=random", "train_lengths"),
        ("task.data.transcribe=first", "transcribe"),
    ],
)
def test_the_joining_options_are_validated(override, named):
    config = composed_config(["task=speech_to_text", override])
    with pytest.raises(UserError, match=named):
        plan_run(config, get_registry())


def test_joining_shifts_frame_spans_to_where_their_utterance_starts():
    first = (np.zeros((5, 2)), "one two", np.array([[0, 2], [2, 5]]))
    second = (np.ones((3, 2)), "red", np.array([[1, 3]]))
    [(frames, text, spans)] = joined([first, second], 2)
    assert frames.shape == (8, 2) and frames[5:].all() and not frames[:5].any()
    assert text == "one two red"
    assert spans.tolist() == [[0, 2], [2, 5], [6, 8]]


def test_drawn_examples_join_distinct_training_utterances_of_the_given_counts():
    utterances = [(np.full((i + 1, 2), float(i)), f"w{i}") for i in range(12)]
    sizes = [1, 4, 2, 30]
    examples = drawn(utterances, sizes, seed=3)
    assert drawn(utterances, sizes, seed=3)[1][1] == examples[1][1]  # seeded
    for (frames, text), size in zip(examples, sizes, strict=True):
        picked = [int(word[1:]) for word in text.split()]
        assert len(picked) == min(size, 12) == len(set(picked))
        assert np.array_equal(frames, np.concatenate([utterances[i][0] for i in picked]))


def test_uniform_lengths_speak_only_the_pool_of_training_utterances():
    data = dataclasses.replace(CURRICULUM, train_utterances_per_example=0, train_lengths="uniform")
    task = build_speech(SpeechOptions(data=data, n_mels=20))
    assert task.data_info["params"]["sizes"] == (4, 3, 6)
    assert task.data_info["sizes"] == {"train": 4, "val": 1, "test": 2}


def test_a_marked_example_transcribes_the_one_utterance_under_the_pilot_tone():
    group = [
        (np.zeros((4, 6)), "one two", np.array([[0, 2], [2, 4]])),
        (np.zeros((3, 6)), "red", np.array([[0, 3]])),
        (np.zeros((5, 6)), "up down", np.array([[0, 1], [1, 5]])),
    ]
    texts = set()
    marks = random.Random(0)
    for _ in range(12):
        [(frames, text, spans)] = joined(group, 3, marks)
        texts.add(text)
        start = {"one two": 0, "red": 4, "up down": 7}[text]
        toned = (frames[:, -PILOT_BANDS:] == PILOT_LEVEL).all(axis=1)
        length = len(next(g[0] for g in group if g[1] == text))
        assert toned.tolist() == [start <= t < start + length for t in range(12)]
        assert not frames[:, :-PILOT_BANDS].any()  # the tone touches the top bands only
        [original] = [g[2] for g in group if g[1] == text]
        assert spans.tolist() == (original + start).tolist()
    assert texts == {"one two", "red", "up down"}  # the mark falls on any utterance


def test_marked_embedded_examples_have_one_utterance_as_their_target():
    data = dataclasses.replace(CURRICULUM, transcribe="marked", train_lengths="loguniform")
    task = build_speech(SpeechOptions(data=data, n_mels=20))
    assert task.data_info["transcribe"] == "marked"
    for split in ("val", "test"):  # three utterances each, one under the tone
        for features, _, text, *_ in task.datamodule.splits[split].items:
            assert 2 <= len(text.split()) <= 3  # one utterance's words (words_min … words_max)
            toned = (features[:, -PILOT_BANDS:] == PILOT_LEVEL).all(dim=1)
            assert 0 < int(toned.sum()) < len(features) / 2
    assert task.waveforms is None, "the tone is in the features only: no audio carries it"
