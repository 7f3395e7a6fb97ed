"""Long translation documents: the length curriculum's options and the truncation warnings."""

from __future__ import annotations

import pytest
from helpers import composed_config

from xbench.api.errors import UserError
from xbench.registry import get_registry
from xbench.run.plan import plan_run
from xbench_tasks.translation import (
    TranslationDataOptions,
    TranslationOptions,
    build_translation,
    document_links,
    documents,
    load_pairs,
    marked_sentences,
)

CURRICULUM = TranslationDataOptions(
    train_size=30, val_size=2, test_size=3, sentences_per_example=6, train_sentences_per_example=2
)


def test_the_curriculum_trains_on_shorter_documents_than_it_evaluates():
    sentences, info = load_pairs(CURRICULUM)
    assert info["params"]["sentences"] == {"train": 60, "val": 12, "test": 18}
    task = build_translation(TranslationOptions(data=CURRICULUM, vocab_size=300))
    assert task.data_info["sizes"] == {"train": 30, "val": 2, "test": 3}
    splits = task.datamodule.splits
    for split, per in (("train", 2), ("val", 6), ("test", 6)):
        expected = [[target] for _, target in documents(sentences[split], per)]
        assert [item[2] for item in splits[split].items] == expected
    longest_train = max(len(item[0]) for item in splits["train"].items)
    assert task.source_length > longest_train  # evaluated beyond the trained lengths
    assert task.data_warnings == []


def test_a_cap_that_cuts_documents_is_a_warning_with_the_count():
    options = TranslationOptions(
        data=CURRICULUM, vocab_size=300, max_source_tokens=30, max_target_tokens=4000
    )
    task = build_translation(options)
    sentences, _ = load_pairs(CURRICULUM)
    tokens = [len(task.tokenizer.encode(s)) for s, _ in documents(sentences["train"], 2)]
    cut = sum(n - 30 > 0.1 * n for n in tokens)
    assert 0 < cut < 30
    assert task.data_warnings == [
        f"task.max_source_tokens=30 cut more than 10% off {cut} of 30 train sources "
        f"({cut / 30:.0%})",
        "task.max_source_tokens=30 cut more than 10% off 2 of 2 val sources (100%)",
        "task.max_source_tokens=30 cut more than 10% off 3 of 3 test sources (100%)",
    ]
    assert max(len(item[0]) for item in task.datamodule.splits["test"].items) == 30


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("task.data.train_sentences_per_example=-1", "train_sentences_per_example"),
        ("task.data.train_sentences_per_example=501", "train_sentences_per_example"),
        ("task.data.train_lengths=random", "train_lengths"),
        ("task.data.translate=first", "translate"),
    ],
)
def test_the_curriculum_options_are_validated(override, named):
    config = composed_config(["task=translation", override])
    with pytest.raises(UserError, match=named):
        plan_run(config, get_registry())


def test_uniform_training_lengths_draw_one_to_the_most_sentences_per_document():
    data = TranslationDataOptions(
        train_size=40, val_size=2, test_size=2, sentences_per_example=6, train_lengths="uniform"
    )
    sentences, info = load_pairs(data)
    sizes = data.document_sizes("train", 40)
    assert info["params"]["sentences"]["train"] == sum(sizes) == len(sentences["train"])
    assert set(sizes) <= set(range(1, 7)) and len(set(sizes)) >= 4
    assert data.document_sizes("test", 2) == [6, 6]
    docs = documents(sentences["train"], data.document_sizes("train", len(sentences["train"])))
    assert len(docs) == 40
    first, second = sentences["train"][: sizes[0]], sentences["train"][sizes[0] : sum(sizes[:2])]
    assert [target for _, target in docs[:2]] == [
        " ".join(t for _, t in first),
        " ".join(t for _, t in second),
    ]


def test_documents_of_given_sizes_stop_when_the_sentences_run_out():
    pairs = [(str(i), f"s{i}") for i in range(7)]
    assert documents(pairs, 3) == [("0 1 2", "s0 s1 s2"), ("3 4 5", "s3 s4 s5"), ("6", "s6")]
    assert documents(pairs, [2, 1, 10]) == [
        ("0 1", "s0 s1"),
        ("2", "s2"),
        ("3 4 5 6", "s3 s4 s5 s6"),
    ]


def test_a_marked_document_translates_the_one_sentence_between_the_marks():
    pairs = [("a b", "x"), ("c", "y z"), ("d e", "w")]
    links = [[(0, 1, 0, 1)], [(0, 1, 0, 1), (2, 3, 0, 1)], [(0, 1, 2, 3)]]
    assert documents(pairs, 3, [1]) == [("a b [ c ] d e", "y z")]
    # target "y z": "y" and "z" both from "c", which now starts at character 6
    assert document_links(pairs, links, 3, [1]) == [[(0, 1, 6, 7), (2, 3, 6, 7)]]
    assert documents(pairs, 3, [2]) == [("a b c [ d e ]", "w")]
    assert document_links(pairs, links, 3, [2]) == [[(0, 1, 10, 11)]]  # "e" of "d e"
    drawn = marked_sentences(pairs * 20, 3, "seed")
    assert drawn == marked_sentences(pairs * 20, 3, "seed") and set(drawn) == {0, 1, 2}


def test_marked_embedded_documents_target_one_sentence_whose_alignment_is_inside_the_marks():
    data = TranslationDataOptions(
        train_size=30, val_size=2, test_size=3, sentences_per_example=6, translate="marked"
    )
    sentences, _ = load_pairs(data)
    task = build_translation(TranslationOptions(data=data, vocab_size=300))
    assert task.data_info["translate"] == "marked"
    piece = task.tokenizer.processor.id_to_piece
    batch = next(iter(task.datamodule.test_dataloader()))
    for b, (source, _, references, *_) in enumerate(task.datamodule.splits["test"].items):
        [reference] = references
        assert reference in {t for _, t in sentences["test"][6 * b : 6 * b + 6]}
        pieces = [piece(int(i)) for i in source]
        opened = next(i for i, p in enumerate(pieces) if "[" in p)
        closed = next(i for i, p in enumerate(pieces) if "]" in p)
        columns = batch["alignment"][b].nonzero()[:, 1]
        assert len(columns) and opened < int(columns.min()) and int(columns.max()) < closed
