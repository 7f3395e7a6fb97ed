"""Hugging Face ``datasets``: the optional extra behind every task's ``source=hf``.

Imported only when a user asks for hub data, so the core and the offline loaders work
without it; every failure becomes a one-line :class:`UserError`.
"""

from __future__ import annotations

from typing import Any

from xbench.api.errors import UserError


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
