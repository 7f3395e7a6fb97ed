"""Task options that every task shares, declared once so they mean the same in each.

A task's options dataclass inherits :class:`LoaderOptions` (or :class:`TextLoaderOptions`
when its source is text); its ``data`` options inherit :class:`SplitOptions` and
:class:`~xbench.taskkit.hf.HFSourceOptions` and declare ``source`` with :func:`data_source`.
The names stay flat and the same in every task (``task.batch_size``, ``task.data.val_size``,
``task.data.hf_val_split``). A task that needs another default for an inherited option says
so with :func:`with_default`, which keeps the option's help and range::

    @dataclass
    class MyOptions(LoaderOptions):
        batch_size: int = with_default(LoaderOptions, "batch_size", 32)
        my_knob: int = option(3, help="...", min=1)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

from xbench.api.options import option
from xbench.taskkit.data import SplitDataModule

__all__ = ["LoaderOptions", "SplitOptions", "TextLoaderOptions", "data_source", "with_default"]


def with_default(cls: type, name: str, default: Any) -> Any:
    """The option ``name`` of the options dataclass ``cls`` with another default value."""
    declared = {f.name: f for f in dataclasses.fields(cls)}
    if name not in declared:
        raise TypeError(f"{cls.__name__} has no option {name!r}")
    return dataclasses.field(default=default, metadata=declared[name].metadata)


def data_source(*real: str) -> Any:
    """The ``task.data.source`` option: ``embedded`` (the default: data the task makes
    offline, seeded) or one of the ``real`` sources the task reads (e.g. ``"files", "hf"``)."""
    choices = ("embedded", *real)
    return option("embedded", help=" | ".join(choices), choices=choices)


@dataclass
class SplitOptions:
    """How many examples each split of the embedded data holds, and the seed that makes
    them. How a task splits real data is the task's own (its options say how); the seed
    also draws any split a task holds out of real data."""

    seed: int = option(1234, help="seed of the embedded data and of real-data splits", min=0)
    train_size: int = option(20000, help="embedded training examples", min=1)
    val_size: int = option(
        500, help="embedded validation examples (real-data splits: see the task)", min=1
    )
    test_size: int = option(
        1000, help="embedded test examples (real-data splits: see the task)", min=1
    )


@dataclass
class LoaderOptions:
    """How a task's examples are cut and batched."""

    batch_size: int = option(64, help="training batch size", min=1)
    eval_batch_size: int = option(250, help="validation/test batch size", min=1)
    num_workers: int = option(0, help="DataLoader worker processes", min=0)
    max_target_tokens: int = option(
        1024, help="target tokens kept (BOS/EOS not counted); longer targets are truncated", min=1
    )

    def datamodule(
        self, splits: dict[str, Dataset], collate: Callable[[list[Any]], dict[str, Any]]
    ) -> SplitDataModule:
        """The train/val/test loaders over encoded ``splits`` these options describe."""
        return SplitDataModule(
            splits, collate, self.batch_size, self.eval_batch_size, self.num_workers
        )


@dataclass
class TextLoaderOptions(LoaderOptions):
    """:class:`LoaderOptions` of a task whose source is text."""

    max_source_tokens: int = option(1024, help="longer sources are truncated", min=8)
