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
    documents,
    load_pairs,
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
        assert [references for _, _, references in splits[split].items] == expected
    longest_train = max(len(source) for source, _, _ in splits["train"].items)
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
    assert max(len(source) for source, _, _ in task.datamodule.splits["test"].items) == 30


@pytest.mark.parametrize("value", ["-1", "501"])
def test_the_curriculum_option_is_validated(value):
    config = composed_config(["task=translation", f"task.data.train_sentences_per_example={value}"])
    with pytest.raises(UserError, match="train_sentences_per_example"):
        plan_run(config, get_registry())
