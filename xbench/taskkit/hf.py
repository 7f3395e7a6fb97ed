"""Hugging Face ``datasets``: the optional extra behind every task's ``source=hf``.

Imported only when a user asks for hub data, so the core and the offline loaders work
without it; every failure becomes a one-line :class:`UserError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from xbench.api.errors import UserError
from xbench.api.options import option
from xbench.taskkit.data import split_val_test

__all__ = ["HFSourceOptions", "load_hf_split"]

Example = TypeVar("Example")


def load_hf_split(name: str, split: str, config: str | None = None) -> tuple[Any, str]:
    """One split of a hub dataset (or of its local cache), and words that name it."""
    try:
        import datasets
    except ImportError:
        raise UserError(
            "loading a dataset from the Hugging Face hub needs the 'datasets' package: "
            "pip install 'xbench[hf]'"
        ) from None
    source = f"dataset {name!r}" + (f" ({config})" if config else "") + f" split {split!r}"
    try:
        return datasets.load_dataset(name, config, split=split), source
    except Exception as error:  # the hub raises many kinds; all mean "cannot get that data"
        raise UserError(f"cannot load {source}: {error}") from error


@dataclass
class HFSourceOptions:
    """Where a task's ``source=hf`` data comes from: inherited by its ``task.data`` options
    (a task whose hub datasets rarely have a test split sets ``hf_test_split`` to None
    with :func:`~xbench.taskkit.options.with_default`)."""

    hf_name: str | None = option(None, help="hf: dataset name on the hub")
    hf_config: str | None = option(None, help="hf: dataset configuration")
    hf_train_split: str = option("train", help="hf: training split")
    hf_val_split: str = option("validation", help="hf: validation split")
    hf_test_split: str | None = option(
        "test", help="hf: test split; null: the validation split is halved (val, test)"
    )

    def load_hf_splits(self, load: Callable[[str], Sequence[Example]]) -> dict[str, list[Example]]:
        """Train, val and test examples, each read by ``load(hub split name)``."""
        if not self.hf_name:
            raise UserError("task.data.source=hf needs task.data.hf_name")
        names = {"train": self.hf_train_split, "val": self.hf_val_split}
        if self.hf_test_split:
            names["test"] = self.hf_test_split
        splits = {split: list(load(name)) for split, name in names.items()}
        if not self.hf_test_split:
            where = f"dataset {self.hf_name!r} split {self.hf_val_split!r}"
            splits["val"], splits["test"] = split_val_test(splits["val"], where)
        return splits
