"""Options every task shares are declared once (xbench.taskkit): the same names, help and
ranges in each task, each task keeping its own defaults; ``source=hf`` reads train, val
and test the same way everywhere."""

from __future__ import annotations

import dataclasses

import pytest
from torch.utils.data import DataLoader

from xbench.api.errors import UserError
from xbench.api.options import build_options, describe_options
from xbench.taskkit.data import SplitDataModule, split_val_test
from xbench.taskkit.hf import HFSourceOptions
from xbench.taskkit.options import LoaderOptions, TextLoaderOptions, with_default
from xbench_tasks.captioning import CaptioningOptions
from xbench_tasks.qa import QADataOptions, QAOptions, load_examples, squad
from xbench_tasks.qa.examples import QAExample
from xbench_tasks.speech_to_text import SpeechOptions
from xbench_tasks.translation import TranslationOptions

TASKS = {
    "qa": QAOptions,
    "translation": TranslationOptions,
    "speech_to_text": SpeechOptions,
    "captioning": CaptioningOptions,
}
TEXT_TASKS = ("qa", "translation")


def _declared(cls: type) -> dict[str, dict]:
    return {f.name: dict(f.metadata) for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("task", TASKS)
def test_every_task_shares_the_loader_and_hf_options(task):
    options = TASKS[task]
    shared = TextLoaderOptions if task in TEXT_TASKS else LoaderOptions
    declared, data = _declared(options), _declared(type(options().data))

    assert issubclass(options, shared)
    assert issubclass(type(options().data), HFSourceOptions)
    for name, meta in _declared(shared).items():
        assert declared[name] == meta, f"{task}.{name} is declared again"
    for name, meta in _declared(HFSourceOptions).items():
        assert data[name] == meta, f"{task}.data.{name} is declared again"


def test_hf_option_names_are_the_same_in_every_task():
    names = {
        task: {n for n in _declared(type(cls().data)) if n.startswith("hf_") and "split" in n}
        for task, cls in TASKS.items()
    }

    assert all(
        found == {"hf_train_split", "hf_val_split", "hf_test_split"} for found in names.values()
    )


def test_tasks_keep_their_own_defaults():
    assert (SpeechOptions().batch_size, SpeechOptions().eval_batch_size) == (32, 100)
    assert (QAOptions().batch_size, QAOptions().eval_batch_size) == (64, 250)
    targets = {task: cls().max_target_tokens for task, cls in TASKS.items()}
    assert targets == {"qa": 16, "translation": 4096, "speech_to_text": 1000, "captioning": 24}
    assert (QAOptions().max_source_tokens, TranslationOptions().max_source_tokens) == (1024, 4096)
    tests = {task: cls().data.hf_test_split for task, cls in TASKS.items()}
    assert tests == {
        "qa": None,
        "translation": "test",
        "speech_to_text": "test",
        "captioning": None,
    }


def test_a_redefaulted_option_keeps_its_help_and_range():
    rows = {row.name: row for row in describe_options(SpeechOptions)}

    assert (rows["batch_size"].default, rows["batch_size"].help) == (32, "training batch size")
    assert rows["batch_size"].allowed.startswith("range [1")
    with pytest.raises(UserError, match=r"task.batch_size=0 is out of range; allowed range is \[1"):
        build_options(SpeechOptions, {"batch_size": 0}, "task")


def test_with_default_names_an_unknown_option():
    with pytest.raises(TypeError, match="LoaderOptions has no option 'batch'"):
        with_default(LoaderOptions, "batch", 3)


def test_loader_options_build_the_data_module():
    options = LoaderOptions(batch_size=3, eval_batch_size=5)
    splits = {split: list(range(11)) for split in ("train", "val", "test")}

    module = options.datamodule(splits, lambda rows: {"ids": rows})

    assert isinstance(module, SplitDataModule)
    loaders = (module.train_dataloader(), module.val_dataloader(), module.test_dataloader())
    assert all(isinstance(loader, DataLoader) for loader in loaders)
    assert [loader.batch_size for loader in loaders] == [3, 5, 5]
    assert next(iter(module.val_dataloader())) == {"ids": [0, 1, 2, 3, 4]}


class _Hub:
    """Stands in for the hub: each split name gives a few rows, and the calls are kept."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes, self.calls = sizes, []

    def __call__(self, split: str) -> list[str]:
        self.calls.append(split)
        return [f"{split}{i}" for i in range(self.sizes[split])]


def test_hf_splits_are_loaded_by_name():
    hub = _Hub({"train": 3, "dev": 2, "eval": 2})
    source = HFSourceOptions(hf_name="x", hf_val_split="dev", hf_test_split="eval")

    splits = source.load_hf_splits(hub)

    assert hub.calls == ["train", "dev", "eval"]
    assert splits["train"] == ["train0", "train1", "train2"]
    assert (splits["val"], splits["test"]) == (["dev0", "dev1"], ["eval0", "eval1"])


def test_without_a_test_split_the_validation_split_is_halved():
    hub = _Hub({"train": 1, "validation": 5})

    splits = HFSourceOptions(hf_name="x", hf_test_split=None).load_hf_splits(hub)

    assert hub.calls == ["train", "validation"]
    assert splits["val"] == ["validation0", "validation1"]
    assert splits["test"] == ["validation2", "validation3", "validation4"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (HFSourceOptions(), "task.data.source=hf needs task.data.hf_name"),
        (HFSourceOptions(hf_name="x", hf_test_split=None), "split 'validation': needs at least 2"),
    ],
)
def test_hf_source_problems_are_user_errors(source, message):
    with pytest.raises(UserError, match=message):
        source.load_hf_splits(_Hub({"train": 2, "validation": 1}))


def test_split_val_test_names_the_set():
    assert split_val_test([1, 2, 3], "x") == ([1], [2, 3])
    with pytest.raises(UserError, match="dev.json: needs at least 2 examples"):
        split_val_test([1], "dev.json")


@pytest.mark.parametrize(
    ("test_split", "loaded", "sizes"),
    [
        (None, ["train", "validation"], [4, 2, 2]),
        ("test", ["train", "validation", "test"], [4, 4, 4]),
    ],
)
def test_qa_hub_data_honours_the_test_split(monkeypatch, test_split, loaded, sizes):
    seen = []

    def load_squad_hf(name, split, config=None):
        seen.append((name, split, config))
        return [QAExample(f"{split}{i}", "a b", "a?", ("a",)) for i in range(4)]

    monkeypatch.setattr(squad, "load_squad_hf", load_squad_hf)
    data = QADataOptions(source="hf", hf_name="squad", hf_config="plain", hf_test_split=test_split)

    splits, info = load_examples(data)

    assert seen == [("squad", split, "plain") for split in loaded]
    assert [len(splits[s]) for s in ("train", "val", "test")] == sizes
    assert info == {"source": "hf", "name": "squad", "config": "plain"}
