"""The reverse task: registered through its entry point, data that keeps the task contract,
metrics that score what they claim, and bad options refused with one line."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from xbench import LoaderOptions, SplitOptions, UserError
from xbench.testing import registered

from xbench_reverse import ReverseData, ReverseOptions, build_reverse, draw_splits, reverse_metrics

SMALL = ReverseOptions(
    data=ReverseData(train_size=64, val_size=8, test_size=16), batch_size=8, eval_batch_size=8
)


def test_is_registered_through_its_entry_point():
    entry = registered("task", "reverse")

    assert entry.distribution == "xbench-reverse"
    assert entry.plugin == "reverse"
    assert entry.spec.modality == "text"
    assert entry.spec.options is ReverseOptions


def test_inherits_the_options_every_task_shares_with_its_own_defaults():
    options = ReverseOptions()

    assert isinstance(options, LoaderOptions) and isinstance(options.data, SplitOptions)
    assert (options.batch_size, options.eval_batch_size, options.num_workers) == (64, 200, 0)
    sizes = (options.data.train_size, options.data.val_size, options.data.test_size)
    assert sizes == (4000, 100, 200) and options.data.seed == 0
    shared = {f.name: f.metadata for f in dataclasses.fields(SplitOptions)}
    assert all(f.metadata == shared[f.name] for f in dataclasses.fields(ReverseData))


def test_the_loaders_follow_the_shared_loader_options():
    task = build_reverse(dataclasses.replace(SMALL, batch_size=5, eval_batch_size=3))
    task.datamodule.setup("fit")

    assert len(next(iter(task.datamodule.train_dataloader()))["source"]) == 5
    assert len(next(iter(task.datamodule.val_dataloader()))["source"]) == 3


def test_max_target_tokens_truncates_the_targets_not_the_references():
    task = build_reverse(dataclasses.replace(SMALL, max_target_tokens=4))

    for _, target, reference in task.datamodule.splits["test"]:
        assert len(target) == 4 + 2  # BOS, four letters, EOS
        assert len(reference.split()) >= SMALL.min_length
    assert task.max_new_tokens == 4 + 1


@pytest.mark.parametrize("mode", ["reverse", "copy"])
def test_batches_keep_the_task_contract(mode):
    task = build_reverse(dataclasses.replace(SMALL, mode=mode))
    tokenizer = task.tokenizer
    task.datamodule.setup("fit")
    batch = next(iter(task.datamodule.train_dataloader()))

    assert set(batch) == {"source", "target", "references"}
    assert batch["source"].dtype == torch.long and batch["target"].dtype == torch.long
    assert (batch["target"][:, 0] == tokenizer.bos_id).all()
    for source, target, references in zip(
        batch["source"], batch["target"], batch["references"], strict=True
    ):
        letters = tokenizer.decode(source.tolist()).split()
        expected = letters[::-1] if mode == "reverse" else letters
        assert tokenizer.decode(target[1:].tolist()).split() == expected
        assert references == [" ".join(expected)]
        assert target.tolist().count(tokenizer.eos_id) == 1


def test_lengths_count_bos_and_eos_and_the_task_passes_the_runners_check():
    task = build_reverse(SMALL)

    task.check("reverse")  # what the runner asks before training
    test_rows = task.datamodule.splits["test"]
    assert task.source_length == max(len(source) for source, _, _ in test_rows)
    assert task.target_length == max(len(source) for source, _, _ in test_rows) + 2
    assert task.target_length <= SMALL.max_length + 2
    json.dumps(task.data_info)
    assert task.data_info["sizes"] == {"test": 16, "val": 8, "train": 64}


def test_evaluation_sequences_never_occur_in_training():
    splits = draw_splits(dataclasses.replace(SMALL, letters=3, min_length=1, max_length=4))

    held_out = set(splits["val"]) | set(splits["test"])
    assert held_out and not held_out & set(splits["train"])


def test_metrics_score_what_they_claim():
    metrics = reverse_metrics()
    metrics.update(["c b a", "a b", "b a"], [["c b a"], ["b a"], ["b a"]])

    scores = {name: float(value) for name, value in metrics.compute().items()}

    assert scores["exact_match"] == pytest.approx(2 / 3)
    assert scores["letter_error_rate"] == pytest.approx(2 / 7)  # 2 substitutions, 7 letters
    statistics = build_reverse(SMALL).example_statistics
    rows = statistics.compute(["c b a", "a b", "b a"], [["c b a"], ["b a"], ["b a"]])
    assert statistics.formula == "mean" and rows == [[1.0], [0.0], [1.0]]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dataclasses.replace(SMALL, min_length=9, max_length=8), "task.min_length=9 is more"),
        (
            dataclasses.replace(
                SMALL,
                letters=2,
                min_length=1,
                max_length=1,
                data=dataclasses.replace(SMALL.data, train_size=5),
            ),
            r"of task\.data\.val_size=8 val sequences .* raise task.max_length or task.letters",
        ),
    ],
)
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(UserError, match=message):
        build_reverse(options)
